import { z } from 'zod';
import { pauseReasonOf } from '../../campaigns/autoPause.ts';
import { pauseCampaign, resumeCampaign, startCampaign, stopCampaign, updateCampaign } from '../../campaigns/lifecycle.ts';
import { claimQuota } from '../../campaigns/quotas.ts';
import { compileCampaign, TemplateError, type CampaignContent } from '../../campaigns/template.ts';
import type { AppContext } from '../../context.ts';
import type { Queryable } from '../../db/database.ts';
import { countListContacts, existingListIds } from '../../db/lists.ts';
import { forecastCampaign, HORIZON_DAYS } from '../../sendingPolicy/forecast.ts';
import { countRunningCampaigns, getCampaign, insertCampaign, listCampaigns, type Campaign } from '../../db/campaigns.ts';
import { listMessages } from '../../db/messages.ts';
import type { ZodApp } from '../app.ts';
import { requireUser } from '../auth.ts';
import { AppError, invalid, notFound } from '../../errors.ts';
import { BOUNCE_TYPES, CAMPAIGN_STATUSES, MESSAGE_STATUSES, PAUSE_REASONS } from '../../states.ts';
import { displayName, displayText, email, headerSafe, id, idParams, noBody, page, pageOf, pageQuery, timestamp, timezone } from '../schemas.ts';

/** A user running this many campaigns at once is warned: they share the same accounts' quota. */
export const MANY_CAMPAIGNS_WARNING_AT = 5;
const MAX_BODY_CHARS = 1_000_000;

const campaignShape = {
  name: displayName,
  listIds: z.array(id).min(1).max(100),
  subject: headerSafe(998).pipe(z.string().trim().min(1)),
  html: z.string().max(MAX_BODY_CHARS),
  text: z.string().max(MAX_BODY_CHARS),
  fromName: displayText(200),
  replyTo: email.refine((s) => !/[\r\n\0<>]/.test(s), 'must be a plain email address'),
  scheduledAt: z.iso.datetime({ offset: true }),
  skipUndeliverable: z.boolean(),
};

const createBody = z
  .object({
    ...campaignShape,
    html: campaignShape.html.optional(),
    text: campaignShape.text.optional(),
    fromName: campaignShape.fromName.optional(),
    replyTo: campaignShape.replyTo.optional(),
    scheduledAt: campaignShape.scheduledAt.optional(),
    skipUndeliverable: campaignShape.skipUndeliverable.default(false),
  })
  .strict()
  .refine((b) => b.html !== undefined || b.text !== undefined, { message: 'give html, text or both', path: ['html'] });

/** Any field; null clears an optional one (scheduledAt: null cancels the schedule). */
const patchBody = z
  .object({
    ...campaignShape,
    html: campaignShape.html.nullable(),
    text: campaignShape.text.nullable(),
    fromName: campaignShape.fromName.nullable(),
    replyTo: campaignShape.replyTo.nullable(),
    scheduledAt: campaignShape.scheduledAt.nullable(),
  })
  .partial()
  .strict();

const forecastQuery = z.object({ timezone: timezone.default('UTC') }).strict();

const messagesQuery = pageQuery.extend({ status: z.enum(MESSAGE_STATUSES).optional() }).strict();

const count = z.number().int();
const campaignReply = z.object({
  id,
  name: z.string(),
  status: z.enum(CAMPAIGN_STATUSES),
  subject: z.string(),
  html: z.string().nullable(),
  text: z.string().nullable(),
  fromName: z.string().nullable(),
  replyTo: z.string().nullable(),
  listIds: z.array(id),
  total: count,
  sent: count,
  failed: count,
  suppressed: count,
  cancelled: count,
  unsubscribed: count,
  bounced: count.describe('hard-bounced after acceptance (a DSN); also counted in failed'),
  softBounced: count,
  complained: count,
  replied: count,
  pending: count.describe('total - sent - failed - suppressed - cancelled'),
  possiblyDelivered: count.describe('of sent, those whose server reply was lost after the final dot'),
  resumeAt: timestamp
    .nullable()
    .describe('paused_limits: when it sends again by itself; null when no account could (pauseReason account_health or bounce_rate: it resumes as soon as one can)'),
  pauseReason: z.enum(PAUSE_REASONS).nullable().describe('why the engine paused it, while paused'),
  scheduledAt: timestamp.nullable(),
  startedAt: timestamp.nullable(),
  completedAt: timestamp.nullable(),
  archivedAt: timestamp.nullable().describe('when retention removed its per-recipient rows'),
  createdAt: timestamp,
  skipUndeliverable: z.boolean(),
  skipped: count.describe('addresses left out of the queue as undeliverable (skipUndeliverable); not in total'),
  skippedReasons: z.record(z.string(), count).describe('skipped, by the first reason of each verification, e.g. {"no_mail_domain": 2}'),
  warnings: z.array(z.string()),
});

const forecastReply = z.object({
  finishAt: timestamp.nullable().describe(`when the last message is expected to go; null when no rule lets it finish within ${HORIZON_DAYS} days`),
  days: z.array(z.object({ date: z.string().describe('YYYY-MM-DD in the asked timezone'), sends: count })),
});

const messageReply = z.object({
  id,
  email: z.string(),
  status: z.enum(MESSAGE_STATUSES),
  attempts: count,
  accountId: id.nullable(),
  lastError: z.string().nullable(),
  sentAt: timestamp.nullable(),
  nextAttemptAt: timestamp.nullable().describe('when a pending message that was retried may be tried again'),
  bounce: z
    .object({ type: z.enum(BOUNCE_TYPES), status: z.string().nullable(), diagnostic: z.string().nullable() })
    .nullable()
    .describe('what a bounce report said after the message was accepted'),
  complainedAt: timestamp.nullable(),
  repliedAt: timestamp.nullable(),
});

function present(c: Campaign, runningCampaigns: number) {
  const warnings: string[] = [];
  if (c.pauseReason && (c.status === 'paused' || c.status === 'paused_limits')) warnings.push(c.pauseReason);
  if (c.senderWarning) warnings.push(c.senderWarning);
  if (runningCampaigns >= MANY_CAMPAIGNS_WARNING_AT && (c.status === 'running' || c.status === 'paused_limits')) {
    warnings.push(`this user runs ${runningCampaigns} campaigns at once; they share the same SMTP accounts and quota`);
  }
  return {
    id: c.id,
    name: c.name,
    status: c.status,
    subject: c.subject,
    html: c.html,
    text: c.text,
    fromName: c.fromName,
    replyTo: c.replyTo,
    listIds: c.listIds,
    total: c.total,
    sent: c.sent,
    failed: c.failed,
    suppressed: c.suppressed,
    cancelled: c.cancelled,
    unsubscribed: c.unsubscribed,
    bounced: c.bounced,
    softBounced: c.softBounced,
    complained: c.complained,
    replied: c.replied,
    pending: c.total - c.sent - c.failed - c.suppressed - c.cancelled,
    possiblyDelivered: c.possiblyDelivered,
    resumeAt: c.resumeAt,
    pauseReason: pauseReasonOf(c),
    scheduledAt: c.scheduledAt,
    startedAt: c.startedAt,
    completedAt: c.completedAt,
    archivedAt: c.archivedAt,
    createdAt: c.createdAt,
    skipUndeliverable: c.skipUndeliverable,
    skipped: c.skipped,
    skippedReasons: c.skippedReasons,
    warnings,
  };
}

export function campaignRoutes(app: ZodApp, ctx: AppContext): void {
  const show = async (db: Queryable, c: Campaign) => present(c, await countRunningCampaigns(db, c.userId));

  /** Refuses templates that do not compile (422 naming the field, line and column). */
  const assertCompiles = (content: CampaignContent) => {
    try {
      compileCampaign(content);
    } catch (err) {
      if (err instanceof TemplateError) throw new AppError(422, 'invalid_template', err.message);
      throw err;
    }
  };

  /** The user's lists among `listIds`, each once; 422 naming any that is not theirs. */
  const ownLists = async (db: Queryable, userId: number, listIds: number[]) => {
    const unique = [...new Set(listIds)];
    const owned = new Set(await existingListIds(db, userId, unique));
    const missing = unique.filter((l) => !owned.has(l));
    if (missing.length > 0) throw invalid('listIds', `no such list: ${missing.join(', ')}`);
    return unique;
  };

  app.post('/api/v1/campaigns', { schema: { body: createBody, response: { 201: campaignReply } } }, async (req, reply) => {
    const userId = requireUser(req.caller);
    const b = req.body;
    assertCompiles({ subject: b.subject, html: b.html ?? null, text: b.text ?? null });
    await claimQuota(req.db, 'campaigns', userId, ctx.config.quotas.campaigns);
    const campaign = await insertCampaign(
      req.db,
      userId,
      {
        name: b.name,
        subject: b.subject,
        html: b.html ?? null,
        text: b.text ?? null,
        fromName: b.fromName ?? null,
        replyTo: b.replyTo ?? null,
        listIds: await ownLists(req.db, userId, b.listIds),
        scheduledAt: b.scheduledAt ? new Date(b.scheduledAt) : null,
        skipUndeliverable: b.skipUndeliverable,
      },
      ctx.clock.now(),
    );
    if (campaign.scheduledAt) req.events.emit({ type: 'engine.wake', userId });
    return reply.status(201).send(await show(req.db, campaign));
  });

  app.patch('/api/v1/campaigns/:id', { schema: { params: idParams, body: patchBody, response: { 200: campaignReply } } }, async (req) => {
    const userId = requireUser(req.caller);
    const current = await getCampaign(req.db, userId, req.params.id);
    if (!current) throw notFound('campaign');
    const { scheduledAt, listIds, ...fields } = req.body;
    const content = {
      subject: fields.subject ?? current.subject,
      html: fields.html === undefined ? current.html : fields.html,
      text: fields.text === undefined ? current.text : fields.text,
    };
    if (content.html === null && content.text === null) throw invalid('html', 'give html, text or both');
    assertCompiles(content);
    const updated = await updateCampaign({ ...ctx, db: req.db, events: req.events }, userId, current.id, {
      ...fields,
      listIds: listIds && (await ownLists(req.db, userId, listIds)),
      scheduledAt: scheduledAt === undefined || scheduledAt === null ? scheduledAt : new Date(scheduledAt),
    });
    return show(req.db, updated);
  });

  app.get('/api/v1/campaigns', { schema: { querystring: pageQuery, response: { 200: pageOf(campaignReply) } } }, async (req) => {
    const userId = requireUser(req.caller);
    const rows = await listCampaigns(req.db, userId, req.query.after ?? 0, req.query.limit + 1);
    const running = await countRunningCampaigns(req.db, userId);
    return page(rows.map((c) => present(c, running)), req.query.limit);
  });

  app.get('/api/v1/campaigns/:id', { schema: { params: idParams, response: { 200: campaignReply } } }, async (req) => {
    const campaign = await getCampaign(req.db, requireUser(req.caller), req.params.id);
    if (!campaign) throw notFound('campaign');
    return show(req.db, campaign);
  });

  const actions = { start: startCampaign, pause: pauseCampaign, resume: resumeCampaign, stop: stopCampaign };
  for (const [action, run] of Object.entries(actions)) {
    // The state machine runs its own transactions (and stop deliberately none around both its steps).
    app.post(`/api/v1/campaigns/:id/${action}`, { schema: { params: idParams, body: noBody, response: { 200: campaignReply } }, config: { dbScope: 'per-query' } }, async (req) => {
      const campaign = await run({ ...ctx, db: req.db, events: req.events }, requireUser(req.caller), req.params.id);
      return show(req.db, campaign);
    });
  }

  app.get('/api/v1/campaigns/:id/forecast', { schema: { params: idParams, querystring: forecastQuery, response: { 200: forecastReply } } }, async (req) => {
    const userId = requireUser(req.caller);
    const campaign = await getCampaign(req.db, userId, req.params.id);
    if (!campaign) throw notFound('campaign');
    if (campaign.status === 'completed' || campaign.status === 'stopped') return { finishAt: campaign.completedAt, days: [] };
    const now = ctx.clock.now();
    const notStarted = campaign.status === 'draft' || campaign.status === 'scheduled';
    // Before the start its queue is not built: every contact of its lists is counted (duplicates and suppressions too).
    const pending = notStarted ? await countListContacts(req.db, userId, campaign.listIds) : campaign.total - campaign.sent - campaign.failed - campaign.suppressed - campaign.cancelled;
    const from = campaign.scheduledAt && campaign.scheduledAt > now ? campaign.scheduledAt : now;
    return forecastCampaign(req.db, userId, { id: campaign.id, pending }, from, req.query.timezone);
  });

  app.get('/api/v1/campaigns/:id/messages', { schema: { params: idParams, querystring: messagesQuery, response: { 200: pageOf(messageReply) } } }, async (req) => {
    const userId = requireUser(req.caller);
    if (!(await getCampaign(req.db, userId, req.params.id))) throw notFound('campaign');
    const q = req.query;
    const rows = await listMessages(req.db, userId, req.params.id, { status: q.status, after: q.after ?? 0, limit: q.limit + 1 });
    return page(rows, q.limit);
  });
}
