/** Wakes one waiting loop. A notify with nobody waiting is remembered, so no wake-up is lost. */
export class Signal {
  private waiter: (() => void) | undefined;
  private pending = false;

  notify(): void {
    if (this.waiter) {
      const wake = this.waiter;
      this.waiter = undefined;
      wake();
    } else this.pending = true;
  }

  wait(): Promise<void> {
    if (this.pending) {
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => (this.waiter = resolve));
  }
}
