import cliProgress from 'cli-progress';
import { estimateFinish, PAUSE_REASON_TEXT, type ForecastView } from '../../web/lib/eta.js';
import { formatCountdown, formatDuration, formatNumber, formatRate, percentDone } from '../../web/lib/format.js';
import { RateMeter } from '../../web/lib/rate.js';
import type { ApiClient } from './http.ts';

/** How often the campaign is read, and how often its forecast (the sending policy's part of the ETA). */
const POLL_MS = 500;
const FORECAST_EVERY_MS = 5_000;
/** Without a terminal, a progress line is printed this often (and on every status change). */
const PLAIN_LINE_EVERY_MS = 5_000;

export const FINAL_STATES = new Set(['completed', 'stopped']);

export interface CampaignView {
  id: number;
  name: string;
  status: string;
  total: number;
  sent: number;
  failed: number;
  suppressed: number;
  cancelled: number;
  pending: number;
  resumeAt: string | null;
  pauseReason?: string | null;
  warnings: string[];
}

export interface WatchOptions {
  /** One JSON line per change on stdout instead of a bar. */
  json: boolean;
  out: NodeJS.WriteStream;
}

/** "running · 85/s · ETA 3m 12s" — what the campaign is doing, why it waits and when it should be done. */
export function describeProgress(c: CampaignView, perSecond: number | null, forecast: ForecastView | null, nowMs: number): string {
  if (c.status === 'paused_limits' && c.resumeAt) {
    const why = PAUSE_REASON_TEXT[c.pauseReason ?? 'limits'] ?? PAUSE_REASON_TEXT.limits;
    const finish = forecast?.finishAt ? `, finishes about ${new Date(forecast.finishAt).toISOString()}` : '';
    return `paused ${why}, resumes in ${formatCountdown(Date.parse(c.resumeAt) - nowMs)}${finish}`;
  }
  if (c.status === 'paused_limits') {
    // No account will send again by itself (resumeAt null): the warnings say which need attention.
    return `waiting (${PAUSE_REASON_TEXT[c.pauseReason ?? 'account_health'] ?? 'no account can send'}) until an SMTP account can send`;
  }
  if (c.status !== 'running') return c.status;
  const eta = estimateFinish({ pending: c.pending, perSecond, forecast, now: nowMs });
  const etaText = eta ? `ETA ${formatDuration(eta.at.getTime() - nowMs)}${eta.limitedBy === 'policy' ? ' (sending policy)' : ''}` : 'no account can send';
  return perSecond === null && !forecast ? 'running · measuring the rate' : `running · ${perSecond === null ? 'measuring' : formatRate(perSecond)} · ${etaText}`;
}

function plainLine(c: CampaignView, state: string): string {
  const done = c.total - c.pending;
  return `${c.name} ${formatNumber(done)}/${formatNumber(c.total)} (${Math.floor(percentDone(c))}%) sent ${formatNumber(c.sent)} failed ${formatNumber(c.failed)} · ${state}`;
}

export function summary(c: CampaignView): string {
  return `Campaign ${c.id} ${c.status}: ${formatNumber(c.sent)} sent, ${formatNumber(c.failed)} failed, ${formatNumber(c.suppressed)} suppressed, ${formatNumber(c.cancelled)} cancelled.`;
}

/**
 * Follows a campaign until it is completed or stopped: a live progress bar on a terminal, a line
 * every few seconds otherwise, or JSON lines with --json. Resolves with the final campaign.
 */
export async function watchCampaign(client: ApiClient, id: number, opts: WatchOptions): Promise<CampaignView> {
  const rate = new RateMeter();
  const tty = Boolean(opts.out.isTTY) && !opts.json;
  const bar = tty
    ? new cliProgress.SingleBar(
        {
          format: '{name} [{bar}] {percentage}% | {done}/{totalText} | sent {sent} failed {failed} | {state}',
          barsize: 30,
          hideCursor: true,
          stream: opts.out,
          fps: 5,
        },
        cliProgress.Presets.shades_classic,
      )
    : undefined;
  let forecast: ForecastView | null = null;
  let forecastReadAt = -Infinity;
  let lastLineAt = -Infinity;
  let last: CampaignView | undefined;
  let barStarted = false;
  const stopBar = () => {
    if (barStarted) bar?.stop();
    barStarted = false;
  };
  const onInterrupt = () => {
    stopBar();
    process.exit(130);
  };
  process.once('SIGINT', onInterrupt);
  try {
    for (;;) {
      const c = await client.request<CampaignView>('GET', `/api/v1/campaigns/${id}`);
      const now = Date.now();
      if (c.status === 'running') rate.add(now, c.sent + c.failed);
      else rate.reset();
      if (now - forecastReadAt >= FORECAST_EVERY_MS && !FINAL_STATES.has(c.status)) {
        forecast = await client.request<ForecastView>('GET', `/api/v1/campaigns/${id}/forecast`);
        forecastReadAt = now;
      }
      const state = describeProgress(c, rate.perSecond(), forecast, now);
      const changed = !last || last.status !== c.status || last.sent !== c.sent || last.failed !== c.failed || last.pending !== c.pending;
      if (opts.json) {
        if (changed) opts.out.write(JSON.stringify(c) + '\n');
      } else if (bar) {
        const payload = { name: c.name, done: formatNumber(c.total - c.pending), totalText: formatNumber(c.total), sent: formatNumber(c.sent), failed: formatNumber(c.failed), state };
        // The bar counts finished recipients out of all of them; a draft has none yet.
        const total = Math.max(c.total, 1);
        const value = c.total === 0 ? (FINAL_STATES.has(c.status) ? 1 : 0) : c.total - c.pending;
        if (!barStarted) {
          bar.start(total, value, payload);
          barStarted = true;
        } else {
          bar.setTotal(total);
          bar.update(value, payload);
        }
      } else if (last?.status !== c.status || now - lastLineAt >= PLAIN_LINE_EVERY_MS || FINAL_STATES.has(c.status)) {
        opts.out.write(plainLine(c, state) + '\n');
        lastLineAt = now;
      }
      last = c;
      if (FINAL_STATES.has(c.status)) return c;
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  } finally {
    stopBar();
    process.off('SIGINT', onInterrupt);
  }
}
