import { EventEmitter } from 'node:events';
import type { CampaignStatus, PauseReason } from './states.ts';

/** What a report said about a sent message (src/reports/applyReport.ts). */
export type MessageReportKind = 'hard_bounce' | 'soft_bounce' | 'complaint' | 'reply';

/** What happened, for the engine (wake up, stop sending) and for SSE subscribers. */
export type AppEvent =
  | { type: 'campaign.status'; userId: number; campaignId: number; status: CampaignStatus }
  | { type: 'campaign.progress'; userId: number; campaignId: number }
  /** What a worker's last batch of sends came to, by outcome kind (see smtp/classify.ts), for metrics. */
  | { type: 'account.outcomes'; userId: number; accountId: number; counts: Record<string, number>; latenciesMs: number[] }
  /**
   * These accounts of the user were switched off, deleted, paused or reconfigured: their workers
   * (in every process) start no new send and hand their claimed messages back.
   */
  | { type: 'account.changed'; userId: number; accountIds: number[] }
  /** Accounts, campaigns or quota of a user changed: the scheduler looks again. */
  | { type: 'engine.wake'; userId: number }
  /**
   * A bounce, complaint or reply was recorded on a sent message (once per message and kind), in the
   * process that read the report: metrics count it, and a per-account bounce/complaint guard can react.
   */
  | { type: 'message.report'; userId: number; accountId: number | null; campaignId: number; messageId: number; kind: MessageReportKind }
  /**
   * An incoming message (inbound SMTP port or an account's mailbox) and what became of it, for
   * metrics. `userId` is 0 when no user is known (a refused delivery).
   */
  | { type: 'report.received'; userId: number; source: 'smtp' | 'imap'; result: ReportReceipt }
  /** The sending policy granted an account worker nothing, for `reason` (metrics). */
  | { type: 'engine.reservation_refused'; userId: number; accountId: number; reason: PauseReason }
  /** This process found an account's lease expired under another holder (a crash or a stall) and took or freed it (metrics). */
  | { type: 'engine.lease_takeover'; userId: number; accountId: number }
  /** A group of outcome rows landed, `lagMs` after the oldest of them was handed over (metrics). `userId` is 0: the group mixes users. */
  | { type: 'engine.outcomes_written'; userId: 0; rows: number; lagMs: number }
  /** An account worker's SMTP session opened, or failed to, by class (smtp/transport.ts sessionFailureClass; metrics). */
  | { type: 'smtp.session'; userId: number; accountId: number; result: string }
  /** A Server-Sent Event went out to a client (metrics). */
  | { type: 'sse.delivered'; userId: number; event: string };

/**
 * What became of an incoming message: `applied` changed a message, `duplicate` repeated what an
 * earlier report did, `auto_reply` and `ignored` (not a report, a success notice, a test send)
 * change nothing, `unmatched` names no message of ours (forged, foreign, archived), `malformed`
 * could not be read, `refused` was turned away (not a VERP address, too big, too many at once),
 * `deferred` will be read again (its message's send is still being recorded).
 */
export type ReportReceipt = 'applied' | 'duplicate' | 'auto_reply' | 'ignored' | 'unmatched' | 'malformed' | 'refused' | 'deferred';

/**
 * Where a piece of work reports what it did. The process's Events is one; a request's is another
 * that holds each event until the request's transaction commits (api/requestDatabase.ts), so no
 * engine or stream ever acts on a change that was then rolled back.
 */
export interface EventSink {
  emit(event: AppEvent): void;
}

/** Which events a handler wants: one type, optionally of one user only. */
export interface EventFilter {
  type: AppEvent['type'];
  userId?: number;
}

/**
 * In-process event bus. A thousand account workers each wait for their own user's status changes
 * only: they listen on a channel of their own, so an event costs a call per interested listener,
 * not one per listener in the process.
 */
export class Events implements EventSink {
  private emitter = new EventEmitter().setMaxListeners(0);

  emit(event: AppEvent): void {
    this.emitter.emit('*', event);
    this.emitter.emit(event.type, event);
    this.emitter.emit(`${event.type}:${event.userId}`, event);
  }

  /** Calls `handler` with every event, or with those `only` names. Returns the unsubscribe function. */
  on(handler: (event: AppEvent) => void, only?: EventFilter): () => void {
    const channel = only === undefined ? '*' : only.userId === undefined ? only.type : `${only.type}:${only.userId}`;
    this.emitter.on(channel, handler);
    return () => this.emitter.off(channel, handler);
  }
}
