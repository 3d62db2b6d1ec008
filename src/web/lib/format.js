/** Numbers and durations as people read them. Shared by the dashboard and the CLI. */

export function formatNumber(n) {
  return Math.round(n).toLocaleString('en-US');
}

/** "<1s", "45s", "3m 12s", "2h 05m", "3d 4h". */
export function formatDuration(ms) {
  if (ms < 1000) return '<1s';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(s % 60).padStart(2, '0')}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${String(m % 60).padStart(2, '0')}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}

/** A ticking countdown: "4:07", "59:12", "1:02:03". */
export function formatCountdown(ms) {
  const s = Math.max(0, Math.ceil(ms / 1000));
  const h = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60));
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${mm.padStart(2, '0')}:${ss}` : `${mm}:${ss}`;
}

export function formatRate(perSecond) {
  if (perSecond === null || perSecond === undefined) return '–';
  return perSecond >= 10 ? `${Math.round(perSecond)}/s` : `${perSecond.toFixed(1)}/s`;
}

/** Share of a campaign's recipients in a final state, 0 to 100. */
export function percentDone(c) {
  if (c.total === 0) return c.status === 'completed' ? 100 : 0;
  return Math.min(100, ((c.total - c.pending) / c.total) * 100);
}
