import { quotaExceeded } from '../../campaigns/quotas.ts';
import type { AppContext } from '../../context.ts';
import { getCampaign, type Campaign } from '../../db/campaigns.ts';
import type { AppEvent } from '../../events.ts';
import type { ZodApp } from '../app.ts';
import { requireUser } from '../auth.ts';
import { notFound } from '../../errors.ts';
import { idParams } from '../schemas.ts';
import { pauseReasonOf } from '../../campaigns/autoPause.ts';
import { textReply } from '../openapi.ts';
import { openEventStream, type EventStream } from '../sse.ts';

/** At most 4 progress events a second per subscriber, however fast the workers record outcomes. */
const PROGRESS_INTERVAL_MS = 250;

/** What both events carry: the campaign's state and counters as they are now. */
function snapshot(c: Campaign) {
  return {
    id: c.id,
    status: c.status,
    total: c.total,
    sent: c.sent,
    failed: c.failed,
    suppressed: c.suppressed,
    cancelled: c.cancelled,
    bounced: c.bounced,
    softBounced: c.softBounced,
    complained: c.complained,
    replied: c.replied,
    pending: c.total - c.sent - c.failed - c.suppressed - c.cancelled,
    resumeAt: c.resumeAt,
    pauseReason: pauseReasonOf(c),
    startedAt: c.startedAt,
    completedAt: c.completedAt,
  };
}

/**
 * GET /api/v1/campaigns/:id/events: Server-Sent Events pushed as the campaign changes. `status` when
 * its status changes, `progress` as its counters move (throttled, the last one always delivered);
 * both carry the campaign's current state, read from the database when sent, and both are sent once
 * on connect.
 */
export function campaignEventRoutes(app: ZodApp, ctx: AppContext): void {
  const open = new Set<EventStream>();
  /** Streams open per user in this process (each holds a connection and a subscription). */
  const perUser = new Map<number, number>();
  const maxPerUser = ctx.config.quotas.eventStreams;
  // Open streams would keep the server from closing.
  app.addHook('preClose', async () => {
    for (const stream of open) stream.end();
  });

  const description =
    'A text/event-stream of `status` (the status changed) and `progress` (the counters moved; at most 4 a second) events, each ' +
    'carrying {id, status, total, sent, failed, suppressed, cancelled, bounced, softBounced, complained, replied, pending, resumeAt, ' +
    'pauseReason, startedAt, completedAt} as JSON; both ' +
    'are sent once on connect, and a comment line every 15 s keeps the connection open.';
  app.get('/api/v1/campaigns/:id/events', { schema: { params: idParams, description, response: { 200: textReply('the event stream', 'text/event-stream') } }, config: { dbScope: 'per-query' } }, async (req, reply) => {
    const userId = requireUser(req.caller);
    const campaignId = req.params.id;
    const first = await getCampaign(req.db, userId, campaignId);
    if (!first) throw notFound('campaign');
    const streams = perUser.get(userId) ?? 0;
    if (streams >= maxPerUser) throw quotaExceeded('eventStreams', maxPerUser);

    const stream = openEventStream(reply, (event) => ctx.events.emit({ type: 'sse.delivered', userId, event }));
    open.add(stream);
    perUser.set(userId, streams + 1);
    let lastStatus = first.status;
    stream.send('status', snapshot(first));
    stream.send('progress', snapshot(first));

    // Reads and sends run one after another, so events never overtake each other.
    let queue = Promise.resolve();
    const push = (kind: 'status' | 'progress') => {
      queue = queue.then(async () => {
        if (stream.closed) return;
        const c = await getCampaign(req.db, userId, campaignId);
        if (!c) return stream.end();
        if (kind === 'progress') stream.send('progress', snapshot(c));
        else if (c.status !== lastStatus) {
          lastStatus = c.status;
          stream.send('status', snapshot(c));
        }
      }).catch(() => stream.end());
    };

    let lastProgressAt = 0;
    let progressTimer: NodeJS.Timeout | undefined;
    const progress = () => {
      if (progressTimer) return;
      const wait = lastProgressAt + PROGRESS_INTERVAL_MS - Date.now();
      const fire = () => {
        progressTimer = undefined;
        lastProgressAt = Date.now();
        push('progress');
      };
      if (wait <= 0) fire();
      else progressTimer = setTimeout(fire, wait);
    };

    const unsubscribe = ctx.events.on((e: AppEvent) => {
      if (e.type !== 'campaign.status' && e.type !== 'campaign.progress') return;
      if (e.campaignId !== campaignId || e.userId !== userId) return;
      if (e.type === 'campaign.status') push('status');
      else progress();
    });
    stream.onClose(() => {
      unsubscribe();
      clearTimeout(progressTimer);
      open.delete(stream);
      const left = perUser.get(userId)! - 1;
      if (left > 0) perUser.set(userId, left);
      else perUser.delete(userId);
    });
  });
}
