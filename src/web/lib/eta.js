/**
 * When a running campaign will finish: the later of what its measured rate needs and what the
 * sending policy allows (the server's forecast, GET /campaigns/:id/forecast, which replays every
 * rule the engine obeys: limits, windows, warm-up, caps). No rule is modelled here. Shared by the
 * dashboard and the CLI.
 */

/**
 * @param {{pending: number, perSecond: number | null, now: Date | number, forecast: {finishAt: string | null} | null}} input
 * @returns {{at: Date, limitedBy: 'rate' | 'policy'} | null} null when the sending policy lets it never finish (no account can send);
 *   without a measured rate or a forecast, whichever is known.
 */
export function estimateFinish({ pending, perSecond, forecast, now }) {
  const t = typeof now === 'number' ? now : now.getTime();
  if (pending <= 0) return { at: new Date(t), limitedBy: 'rate' };
  const byRate = perSecond && perSecond > 0 ? t + (pending / perSecond) * 1000 : t;
  if (forecast && forecast.finishAt === null) return null;
  const byPolicy = forecast ? Date.parse(forecast.finishAt) : t;
  return byPolicy > byRate ? { at: new Date(byPolicy), limitedBy: 'policy' } : { at: new Date(byRate), limitedBy: 'rate' };
}

/** Why a campaign waits, in words (API.md pauseReason). */
export const PAUSE_REASON_TEXT = {
  limits: 'at its accounts’ limits',
  sending_window: 'outside its accounts’ sending windows',
  warmup: 'at today’s warm-up limit',
  domain_cap: 'at a domain cap',
  account_health: 'waiting for its accounts’ health',
  bounce_rate: 'paused for the bounce or complaint rate',
  repeated_failures: 'its messages keep failing for the same reason',
};
