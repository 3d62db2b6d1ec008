import type { CampaignStatus } from '../states.ts';

/** A campaign that was running and is no longer, as far as a database read can tell (which status is unknown). */
type Known = CampaignStatus | 'not_running';

/**
 * What one account worker knows of its user's campaigns' status, so it can act on a pause or stop
 * between two claims (DESIGN.md promise 4) without asking the database before every send.
 *
 * Two sources feed it: status events (at once, from any process) and the list of running campaigns
 * read before each claim. A read that started before an event must not undo it, so every event
 * gets a sequence number and a read only updates campaigns with no event since the read began.
 */
export class CampaignStatusCache {
  private readonly status = new Map<number, Known>();
  private readonly changedAt = new Map<number, number>();
  private seq = 0;

  /** A status event. Returns true when the campaign no longer runs (the worker should look at its queue). */
  onEvent(campaignId: number, status: CampaignStatus): boolean {
    this.status.set(campaignId, status);
    this.changedAt.set(campaignId, ++this.seq);
    return status !== 'running';
  }

  /** Marks the start of a database read; pass the mark to `reconcile` with what it read. */
  mark(): number {
    return this.seq;
  }

  /** The running campaigns a read begun at `mark` found. */
  reconcile(running: number[], mark: number): void {
    const now = new Set(running);
    for (const id of new Set([...running, ...this.status.keys()])) {
      if ((this.changedAt.get(id) ?? -1) > mark) continue;
      if (now.has(id)) this.status.set(id, 'running');
      else if (this.status.get(id) === 'running') this.status.set(id, 'not_running');
    }
  }

  isRunning(campaignId: number): boolean {
    return this.status.get(campaignId) === 'running';
  }

  isStopped(campaignId: number): boolean {
    return this.status.get(campaignId) === 'stopped';
  }
}
