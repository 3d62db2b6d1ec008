const WINDOW_MS = 1_000;

/**
 * How many sends the server accepted in the last second (real time): when a throttle comes, that
 * is the pace the server took, the basis of the gentle restart after it (engine/accountHealth.ts).
 */
export class AcceptedRecently {
  private times: number[] = [];

  add(): void {
    const now = performance.now();
    this.times.push(now);
    // Trimmed now and then rather than on every send: at most a second and a bit of entries.
    if (this.times.length > 64 && this.times[0]! < now - 2 * WINDOW_MS) this.times = this.times.filter((t) => t >= now - WINDOW_MS);
  }

  lastSecond(): number {
    const since = performance.now() - WINDOW_MS;
    return this.times.filter((t) => t >= since).length;
  }
}
