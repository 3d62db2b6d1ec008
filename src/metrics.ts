import { hostname } from 'node:os';
import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { AppContext } from './context.ts';
import { CAMPAIGN_STATUSES, HEALTH_STATES } from './states.ts';
import { accountsByHealth, activeAccounts, campaignStates, countLiveWorkers, countSending } from './db/metrics.ts';
import { countProcessEvents } from './processMetrics.ts';
import { readAccountUsage } from './sendingPolicy/accountUsage.ts';

/** Which kind of process exposes the metrics: the `role` label of every series. */
export type ProcessRole = 'serve' | 'worker';

/**
 * Prometheus metrics of one MailPilot instance, in a registry of its own (several instances in one
 * process must not share counters). Every series carries `role` (serve or worker), and
 * `mailpilot_process_info{node}` names the process.
 *
 * Counters (processMetrics.ts) count what this process did: summed over every process they give the
 * cluster's totals. With `cluster: true` (serve) the gauges of queue depth, campaigns, live workers and
 * quota are read from the database at scrape time and describe the whole cluster: each serving
 * process reports the same figures, so they are aggregated with max(), never sum(). Workers leave
 * them out (their scrape costs no query).
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly cluster: ClusterGauges | undefined;
  private readonly stopCounting: () => void;

  constructor(
    private readonly ctx: AppContext,
    opts: { role: ProcessRole; cluster: boolean },
  ) {
    this.registry.setDefaultLabels({ role: opts.role });
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'mailpilot_process_' });
    new Gauge({ name: 'mailpilot_process_info', help: 'This process: node is host:pid', labelNames: ['node'], registers }).set(
      { node: `${hostname()}:${process.pid}` },
      1,
    );
    this.stopCounting = countProcessEvents(ctx.events, registers);
    this.cluster = opts.cluster ? clusterGauges(registers) : undefined;
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Reads the cluster gauges from the database (when kept), then renders every metric in the Prometheus text format. */
  async scrape(): Promise<string> {
    if (this.cluster) await this.readCluster(this.cluster);
    return this.registry.metrics();
  }

  private async readCluster(g: ClusterGauges): Promise<void> {
    const { db } = this.ctx;
    const now = this.ctx.clock.now();
    const [states, sending, workers, accounts, health] = await Promise.all([
      campaignStates(db),
      countSending(db),
      countLiveWorkers(db, now),
      activeAccounts(db),
      accountsByHealth(db, now),
    ]);
    const usage = await readAccountUsage(db, accounts.map((a) => a.accountId), now);

    g.campaigns.reset();
    for (const status of CAMPAIGN_STATUSES) {
      g.campaigns.set({ status }, states.find((s) => s.status === status)?.campaigns ?? 0);
    }
    const unfinished = states.reduce((n, s) => n + s.unfinished, 0);
    g.queue.set({ status: 'pending' }, Math.max(0, unfinished - sending));
    g.queue.set({ status: 'sending' }, sending);
    g.workers.set(workers);
    for (const state of HEALTH_STATES) g.health.set({ health: state }, health.find((h) => h.health === state)?.accounts ?? 0);

    // Reset first, so deleted or deactivated accounts disappear instead of keeping their last value.
    g.quota.reset();
    for (const a of accounts) {
      const u = usage.get(a.accountId)!;
      const labels = { account_id: String(a.accountId), user_id: String(a.userId) };
      if (u.hourlyLimit > 0) g.quota.set({ ...labels, window: 'hour' }, Math.max(0, u.hourlyLimit - u.sentThisHour));
      if (u.effectiveDailyLimit > 0) g.quota.set({ ...labels, window: 'day' }, Math.max(0, u.effectiveDailyLimit - u.sentToday));
    }
  }

  close(): void {
    this.stopCounting();
  }
}

interface ClusterGauges {
  queue: Gauge<'status'>;
  campaigns: Gauge<'status'>;
  workers: Gauge;
  health: Gauge<'health'>;
  quota: Gauge<'account_id' | 'user_id' | 'window'>;
}

function clusterGauges(registers: Registry[]): ClusterGauges {
  return {
    queue: new Gauge({
      name: 'mailpilot_queue_messages',
      help: 'Messages not yet in a final state, cluster-wide: pending (waiting in the queue) or sending (claimed by a worker)',
      labelNames: ['status'],
      registers,
    }),
    campaigns: new Gauge({ name: 'mailpilot_campaigns', help: 'Campaigns by status, cluster-wide', labelNames: ['status'], registers }),
    workers: new Gauge({
      name: 'mailpilot_active_workers',
      help: 'Account workers holding a live lease, cluster-wide (one per sending SMTP account)',
      registers,
    }),
    health: new Gauge({
      name: 'mailpilot_accounts',
      help: 'Active SMTP accounts by health (healthy, throttled, exhausted, disabled), cluster-wide',
      labelNames: ['health'],
      registers,
    }),
    quota: new Gauge({
      name: 'mailpilot_account_quota_remaining',
      help: 'Sends an active account has left in its current hour or day; absent for a window without limit',
      labelNames: ['account_id', 'user_id', 'window'],
      registers,
    }),
  };
}
