/**
 * Sending rate of a campaign, measured from successive readings of its finished count
 * (sent + failed): messages per second over a sliding window. Shared by the dashboard and the CLI.
 */

const WINDOW_MS = 30_000;

export class RateMeter {
  constructor(windowMs = WINDOW_MS) {
    this.windowMs = windowMs;
    this.samples = [];
  }

  /** Records that `done` messages were finished at `atMs` (milliseconds, any monotonic clock). */
  add(atMs, done) {
    const last = this.samples.at(-1);
    // A count going down means another campaign or a restart of the reading: start over.
    if (last && done < last.done) this.samples = [];
    this.samples.push({ atMs, done });
    while (this.samples.length > 2 && this.samples[0].atMs < atMs - this.windowMs) this.samples.shift();
  }

  /** Messages per second, or null until two readings at least a second apart exist. */
  perSecond() {
    const first = this.samples[0];
    const last = this.samples.at(-1);
    if (!first || !last || last.atMs - first.atMs < 1000) return null;
    return ((last.done - first.done) * 1000) / (last.atMs - first.atMs);
  }

  reset() {
    this.samples = [];
  }
}
