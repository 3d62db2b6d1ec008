/**
 * An account's `ratePerSecond`: sends start at least 1/rate seconds apart (real time, not business
 * time: it paces the SMTP peer). Without a rate every send may start at once.
 */
export class SendPace {
  private nextAt = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private ratePerSecond: number | null,
    private readonly wake: () => void,
  ) {}

  get rate(): number | null {
    return this.ratePerSecond;
  }

  /** Paces the next sends at `ratePerSecond` (null: no pace). */
  setRate(ratePerSecond: number | null): void {
    this.ratePerSecond = ratePerSecond;
  }

  /** Takes the next slot if it has come; otherwise arms a timer that calls `wake` when it does. */
  take(): boolean {
    if (!this.ratePerSecond) return true;
    const wait = this.nextAt - performance.now();
    if (wait > 0) {
      this.timer ??= setTimeout(() => {
        this.timer = undefined;
        this.wake();
      }, wait);
      return false;
    }
    this.nextAt = Math.max(this.nextAt, performance.now()) + 1000 / this.ratePerSecond;
    return true;
  }

  stop(): void {
    clearTimeout(this.timer);
  }
}
