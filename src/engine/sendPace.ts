import type { Clock, Timer } from '../clock.ts';
import { gapAfter, type AccountRules } from '../sendingPolicy/policy.ts';

/**
 * How fast one account's sends start:
 * - `ratePerSecond`: at least 1/rate seconds apart, in real time (it paces the SMTP peer);
 * - gaps (`minGapSeconds`/`maxGapSeconds`, the sending policy): a random pause between two sends, in
 *   business time, across campaigns and processes (the next one's earliest start is kept on the
 *   account, so a worker taking the account over keeps it too).
 */
export class SendPace {
  private nextAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private gapUntil = 0;
  private gapTimer: Timer | undefined;
  private gaps: Pick<AccountRules, 'minGapSeconds' | 'maxGapSeconds'> = { minGapSeconds: null, maxGapSeconds: null };

  constructor(
    private ratePerSecond: number | null,
    private readonly clock: Clock,
    private readonly wake: () => void,
  ) {}

  get rate(): number | null {
    return this.ratePerSecond;
  }

  /** Paces the next sends at `ratePerSecond` (null: no pace). */
  setRate(ratePerSecond: number | null): void {
    this.ratePerSecond = ratePerSecond;
  }

  /** The account's gap rules, and the earliest start its last send left (from any process). */
  setGaps(rules: Pick<AccountRules, 'minGapSeconds' | 'maxGapSeconds'>, until: Date | null): void {
    this.gaps = rules;
    if (until) this.gapUntil = Math.max(this.gapUntil, until.getTime());
  }

  /** Takes the next slot if it has come; otherwise arms a timer that calls `wake` when it does. */
  take(): boolean {
    if (this.gaps.minGapSeconds && this.clock.now().getTime() < this.gapUntil) {
      this.gapTimer ??= this.clock.at(new Date(this.gapUntil), () => {
        this.gapTimer = undefined;
        this.wake();
      });
      return false;
    }
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

  /** A send started at `at` (business time): returns when the next may, if the account has gaps. */
  started(at: Date): Date | undefined {
    const until = gapAfter(this.gaps, at.getTime());
    if (until === undefined) return undefined;
    this.gapUntil = until;
    return new Date(until);
  }

  stop(): void {
    clearTimeout(this.timer);
    this.gapTimer?.cancel();
  }
}
