import type { EventSink } from '../events.ts';

/**
 * Campaigns' counters changed: at most one `campaign.progress` per campaign every this many ms (the
 * outcome statements' old spacing), however often statements land.
 */
const PROGRESS_EVERY_MS = 50;

/**
 * Announces campaign progress for the outcome writer, leading and trailing: the first change goes
 * out at once, later ones within PROGRESS_EVERY_MS, and the last is never dropped. With outcomes
 * committed continuously a statement lands every few milliseconds; one event each, relayed to the
 * other processes (NOTIFY) and to every dashboard stream, cost a third of the send rate
 * (bench:throughput 1,205 against 1,887 msg/s without them, same load).
 */
export class ProgressAnnouncer {
  /** Campaign id → its user, changed since the last announcement. */
  private readonly due = new Map<number, number>();
  private timer: NodeJS.Timeout | undefined;
  private lastAt = -Infinity;

  constructor(private readonly events: EventSink) {}

  changed(campaigns: readonly { id: number; userId: number }[]): void {
    for (const c of campaigns) this.due.set(c.id, c.userId);
    if (this.timer || this.due.size === 0) return;
    const wait = this.lastAt + PROGRESS_EVERY_MS - performance.now();
    if (wait <= 0) this.announce();
    else this.timer = setTimeout(() => this.announce(), wait).unref();
  }

  private announce(): void {
    this.timer = undefined;
    this.lastAt = performance.now();
    for (const [campaignId, userId] of this.due) this.events.emit({ type: 'campaign.progress', userId, campaignId });
    this.due.clear();
  }
}
