import { EventEmitter } from 'node:events';

/** What happened, for the engine (wake up, stop sending) and for SSE subscribers. */
export type AppEvent =
  | { type: 'campaign.status'; userId: number; campaignId: number; status: string }
  | { type: 'campaign.progress'; userId: number; campaignId: number }
  /** What a worker's last batch of sends came to, by outcome kind (see smtp/classify.ts), for metrics. */
  | { type: 'account.outcomes'; userId: number; accountId: number; counts: Record<string, number>; latenciesMs: number[] }
  /** Accounts, campaigns or quota of a user changed: the scheduler looks again. */
  | { type: 'engine.wake'; userId: number };

/** In-process event bus. */
export class Events {
  private emitter = new EventEmitter().setMaxListeners(0);

  emit(event: AppEvent): void {
    this.emitter.emit('event', event);
  }

  on(handler: (event: AppEvent) => void): () => void {
    this.emitter.on('event', handler);
    return () => this.emitter.off('event', handler);
  }
}
