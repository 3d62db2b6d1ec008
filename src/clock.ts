/**
 * The application's one clock. Business time (limits, schedules, resumeAt, retries, leases) comes
 * from here and enters SQL as a parameter, so tests can drive hours and days with FakeClock.
 */
export interface Clock {
  now(): Date;
  /** Calls fn once when the clock reaches `at` (at once if it already has). */
  at(at: Date, fn: () => void): Timer;
}

export interface Timer {
  cancel(): void;
}

// setTimeout's longest delay; longer waits re-arm.
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

export const systemClock: Clock = {
  now: () => new Date(),
  at(at, fn) {
    let handle: NodeJS.Timeout | undefined;
    const arm = () => {
      const wait = at.getTime() - Date.now();
      if (wait > MAX_TIMEOUT_MS) handle = setTimeout(arm, MAX_TIMEOUT_MS);
      else handle = setTimeout(fn, Math.max(0, wait));
      handle.unref();
    };
    arm();
    return { cancel: () => clearTimeout(handle) };
  },
};

/** A clock that moves only when told to; due timers fire on advance. */
export class FakeClock implements Clock {
  private current: number;
  private timers = new Set<{ at: number; fn: () => void }>();

  constructor(start: Date | string) {
    this.current = new Date(start).getTime();
  }

  now(): Date {
    return new Date(this.current);
  }

  at(at: Date, fn: () => void): Timer {
    const timer = { at: at.getTime(), fn };
    this.timers.add(timer);
    if (timer.at <= this.current) queueMicrotask(() => this.fire());
    return { cancel: () => this.timers.delete(timer) };
  }

  set(to: Date | string): void {
    this.current = new Date(to).getTime();
    this.fire();
  }

  advance(ms: number): void {
    this.set(new Date(this.current + ms));
  }

  private fire(): void {
    const due = [...this.timers].filter((t) => t.at <= this.current).sort((a, b) => a.at - b.at);
    for (const t of due) {
      this.timers.delete(t);
      t.fn();
    }
  }
}
