import type { Clock } from '../clock.ts';
import type { Campaign } from '../db/campaigns.ts';
import type { Database } from '../db/database.ts';
import type { EventSink } from '../events.ts';

/**
 * What the campaign state machine works with. `events` receives status changes only once they are
 * committed: a caller inside a transaction (an API request) passes a sink that waits for its commit.
 */
export interface CampaignContext {
  db: Database;
  clock: Clock;
  events: EventSink;
}

/** Tells engines and event streams that the campaign's status changed; returns the campaign. */
export function announce(events: EventSink, c: Campaign): Campaign {
  events.emit({ type: 'campaign.status', userId: c.userId, campaignId: c.id, status: c.status });
  return c;
}
