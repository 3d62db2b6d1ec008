import type { Logger } from '../log.ts';

/** Lines of one kind written per minute at most; the rest are counted and summed up in one line. */
const LINES_PER_MINUTE = 20;
const MINUTE_MS = 60_000;

/**
 * A log that a flood cannot fill: every refused or ignored message gets its line until a kind of
 * line has been written LINES_PER_MINUTE times in the minute, then the rest of that minute's are
 * only counted and reported in one line when the next minute's first one is written.
 */
export class ThrottledLog {
  private readonly windows = new Map<string, { start: number; written: number; dropped: number }>();

  constructor(private readonly log: Logger) {}

  write(level: 'debug' | 'info' | 'warn', key: string, fields: Record<string, unknown>, message: string): void {
    const now = Date.now();
    let w = this.windows.get(key);
    if (!w || now - w.start >= MINUTE_MS) {
      if (w && w.dropped > 0) this.log[level]({ dropped: w.dropped, kind: key }, `${w.dropped} more lines like "${message}" were not written`);
      w = { start: now, written: 0, dropped: 0 };
      this.windows.set(key, w);
    }
    if (w.written >= LINES_PER_MINUTE) {
      w.dropped++;
      return;
    }
    w.written++;
    this.log[level](fields, message);
  }
}
