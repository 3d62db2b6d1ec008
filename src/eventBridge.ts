import { randomBytes } from 'node:crypto';
import type { Database } from './db/database.ts';
import { retryTransient } from './db/transient.ts';
import type { AppEvent, Events } from './events.ts';
import type { Logger } from './log.ts';

const CHANNEL = 'mailpilot_events';
/** What other processes need: engines act on status changes, account changes and wake-ups, SSE streams show progress. */
const SHARED: ReadonlySet<AppEvent['type']> = new Set(['campaign.status', 'campaign.progress', 'account.changed', 'engine.wake']);
// PostgreSQL refuses NOTIFY payloads of 8000 bytes or more.
const MAX_PAYLOAD_CHARS = 7_000;

interface Envelope {
  origin: string;
  events: AppEvent[];
}

/**
 * Carries events between processes that share one PostgreSQL server (LISTEN/NOTIFY), so a pause,
 * a stop, an account switched off or a new campaign reaches the engine of every process within moments, and every process
 * keeps the same Events interface. Events raised in one tick go out together, in order, in one
 * notification where they fit. The embedded database serves one process: nothing to bridge.
 * Returns the function that stops bridging.
 */
export async function bridgeEvents(events: Events, db: Database, log: Logger): Promise<() => Promise<void>> {
  if (db.kind !== 'postgres') return async () => undefined;
  const origin = randomBytes(8).toString('hex');
  let relaying = false;
  let closed = false;
  let outbox: AppEvent[] = [];
  let sending: Promise<void> | undefined;

  const unlisten = await db.listen(
    CHANNEL,
    (payload) => {
      let envelope: Envelope;
      try {
        envelope = JSON.parse(payload) as Envelope;
      } catch {
        return;
      }
      if (envelope.origin === origin) return;
      relaying = true;
      try {
        for (const e of envelope.events) events.emit(e);
      } finally {
        relaying = false;
      }
    },
    () => log.info('event channel reconnected'),
  );

  const send = async () => {
    // Let the rest of this tick's events join the batch.
    await new Promise((r) => setImmediate(r));
    while (outbox.length > 0) {
      const batch = coalesceProgress(outbox.splice(0));
      await retryTransient(() => db.notify(CHANNEL, pack(origin, batch)), () => closed).catch((err) =>
        log.warn({ err }, 'could not publish events to other processes'),
      );
    }
    sending = undefined;
  };

  const off = events.on((e) => {
    if (relaying || closed || !SHARED.has(e.type)) return;
    outbox.push(e);
    sending ??= send();
  });

  return async () => {
    off();
    closed = true;
    await sending;
    await unlisten();
  };
}

/** Progress events say only "look again": one per campaign per batch is enough. */
function coalesceProgress(batch: AppEvent[]): AppEvent[] {
  const seen = new Set<number>();
  return batch.filter((e) => {
    if (e.type !== 'campaign.progress') return true;
    if (seen.has(e.campaignId)) return false;
    seen.add(e.campaignId);
    return true;
  });
}

function pack(origin: string, batch: AppEvent[]): string[] {
  const payloads: string[] = [];
  let current: AppEvent[] = [];
  const flush = () => {
    if (current.length > 0) payloads.push(JSON.stringify({ origin, events: current } satisfies Envelope));
    current = [];
  };
  let size = 0;
  for (const e of batch) {
    const len = JSON.stringify(e).length + 1;
    if (size + len > MAX_PAYLOAD_CHARS) {
      flush();
      size = 0;
    }
    current.push(e);
    size += len;
  }
  flush();
  return payloads;
}
