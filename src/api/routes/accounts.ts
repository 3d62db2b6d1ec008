import { z } from 'zod';
import { setTimeout as sleep } from 'node:timers/promises';
import { reconsiderPaused } from '../../campaigns/autoPause.ts';
import type { AppContext } from '../../context.ts';
import { healthView, learnedView } from '../../db/accountHealth.ts';
import { mailboxViews, saveMailbox } from '../../db/accountMailboxes.ts';
import type { Queryable } from '../../db/database.ts';
import {
  deleteAccount,
  getAccount,
  insertAccount,
  listAccounts,
  timezoneKnown,
  updateAccount,
  type OAuthSettings,
  type SmtpAccount,
} from '../../db/smtpAccounts.ts';
import { onReconfigured, onResumed } from '../../engine/accountHealth.ts';
import { dkimKeyProblem } from '../../smtp/dkim.ts';
import { tokenUrlHost } from '../../smtp/oauthTokens.ts';
import type { ZodApp } from '../app.ts';
import { requireUser } from '../auth.ts';
import { conflict, invalid, notFound } from '../../errors.ts';
import { MAILBOX_STATES, SECURITY_MODES } from '../../states.ts';
import { host } from './servers.ts';
import { email, healthReply, id, idParams, noContent, page, pageOf, pageQuery, timestamp, timezone } from '../schemas.ts';
import { readAccountUsage } from '../../sendingPolicy/accountUsage.ts';
import { LIMIT_WINDOW_KINDS } from '../../sendingPolicy/limitWindows.ts';
import { presetFill, PRESET_NAMES } from '../../sendingPolicy/presets.ts';
import { WEEKDAY_NAMES } from '../../sendingPolicy/sendingWindow.ts';

const MAX_INT = 2 ** 31 - 1;
const noLineBreaks = (s: string) => !/[\r\n\0]/.test(s);

// One or more DNS labels (RFC 1035 letters, digits, hyphens), as a DKIM domain or selector.
const DNS_NAME = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;
const MAX_PEM_CHARS = 20_000;

const dkimSettings = z
  .object({
    domain: z.string().trim().toLowerCase().regex(DNS_NAME, 'must be a domain name such as example.com'),
    selector: z.string().trim().toLowerCase().regex(DNS_NAME, 'must be a DNS label such as mail2026'),
    privateKey: z
      .string()
      .max(MAX_PEM_CHARS)
      .superRefine((pem, check) => {
        const problem = dkimKeyProblem(pem);
        if (problem) check.addIssue({ code: 'custom', message: problem });
      }),
  })
  .strict();

/** The account's own mailbox, read for bounces, complaints and replies (src/reports/mailboxReader.ts). */
const imapSettings = z
  .object({
    host,
    port: z.number().int().min(1).max(65535),
    security: z.enum(SECURITY_MODES),
    /** Default: the account's SMTP username, else its address. */
    username: z.string().min(1).max(254).refine(noLineBreaks, 'must not contain line breaks or NUL').nullable().default(null),
    /** Default: the account's SMTP password. */
    password: z.string().min(1).max(1024).refine(noLineBreaks, 'must not contain line breaks or NUL').nullable().default(null),
    mailbox: z.string().min(1).max(200).refine(noLineBreaks, 'must not contain line breaks or NUL').default('INBOX'),
  })
  .strict();

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/** A token endpoint receives secrets: HTTPS, or plain HTTP to this machine only (a local proxy or test). */
function isTokenEndpoint(url: string): boolean {
  try {
    const u = new URL(url);
    return (u.protocol === 'https:' || (u.protocol === 'http:' && LOOPBACK_HOSTS.has(u.hostname))) && u.username === '' && u.password === '';
  } catch {
    return false;
  }
}

const secretText = (max: number) => z.string().min(1).max(max).refine(noLineBreaks, 'must not contain line breaks or NUL');

/** XOAUTH2 with a refresh token (API.md "Account auth and health"); README "OAuth2 accounts". */
const oauth2Auth = z
  .object({
    type: z.literal('oauth2'),
    clientId: secretText(1024),
    clientSecret: secretText(4096),
    refreshToken: secretText(16_384),
    tokenUrl: z.string().max(2048).refine(isTokenEndpoint, 'must be an https:// URL without credentials in it (http:// only to localhost)'),
    /** The XOAUTH2 user, when it is not the account's address. */
    user: secretText(254).optional(),
  })
  .strict();

const oauthSettings = (auth: z.infer<typeof oauth2Auth> | null | undefined): OAuthSettings | null | undefined =>
  auth && { clientId: auth.clientId, clientSecret: auth.clientSecret, refreshToken: auth.refreshToken, tokenUrl: auth.tokenUrl, user: auth.user ?? null };

const HH_MM = /^([01][0-9]|2[0-3]):[0-5][0-9]$/;
const MAX_GAP_SECONDS = 86_400;

const sendingWindow = z
  .object({
    timezone,
    days: z
      .array(z.enum(WEEKDAY_NAMES))
      .min(1)
      .max(7)
      .refine((d) => new Set(d).size === d.length, 'must not repeat a day'),
    start: z.string().regex(HH_MM, 'must be a local time HH:MM such as 09:00'),
    end: z.string().refine((s) => s === '24:00' || HH_MM.test(s), 'must be a local time HH:MM such as 17:30, or 24:00'),
  })
  .strict()
  .refine((w) => w.end > w.start, { message: 'must be after start', path: ['end'] });

const warmup = z
  .object({
    startPerDay: z.number().int().min(1).max(MAX_INT),
    increasePerDay: z.number().int().min(0).max(MAX_INT),
  })
  .strict();

const accountShape = {
  serverId: z.number().int().positive().max(MAX_INT),
  email,
  username: z.string().min(1).max(254).refine(noLineBreaks, 'must not contain line breaks or NUL').nullable(),
  password: z.string().min(1).max(1024).refine(noLineBreaks, 'must not contain line breaks or NUL').nullable(),
  hourlyLimit: z.number().int().min(0).max(MAX_INT),
  dailyLimit: z.number().int().min(0).max(MAX_INT),
  ratePerSecond: z.number().positive().max(10_000).nullable(),
  timezone,
  active: z.boolean(),
  /** Signs every message of the account; null = no signature. */
  dkim: dkimSettings.nullable(),
  /** Envelope senders are VERP addresses at this domain, whose MX points at the inbound port; null = the account's address. */
  bounceDomain: z.string().trim().toLowerCase().regex(DNS_NAME, 'must be a domain name such as bounces.example.com').nullable(),
  imap: imapSettings.nullable(),
  /** Logs in with OAuth2 instead of a password; null = no OAuth2. */
  auth: oauth2Auth.nullable(),
  limitWindow: z.enum(LIMIT_WINDOW_KINDS),
  preset: z.enum(PRESET_NAMES).nullable(),
  sendingWindow: sendingWindow.nullable(),
  warmup: warmup.nullable(),
  minGapSeconds: z.number().int().min(1).max(MAX_GAP_SECONDS).nullable(),
  maxGapSeconds: z.number().int().min(1).max(MAX_GAP_SECONDS).nullable(),
  maxConnections: z.number().int().min(1).max(100).nullable(),
};

/** Gaps: the longest pause is not shorter than the shortest. */
const gapsInOrder = (b: { minGapSeconds?: number | null; maxGapSeconds?: number | null }) =>
  b.minGapSeconds == null || b.maxGapSeconds == null || b.maxGapSeconds >= b.minGapSeconds;

// The fields a preset fills stay undefined until it has (see presetFill).
const createAccountBody = z
  .object({
    ...accountShape,
    username: accountShape.username.default(null),
    password: accountShape.password.default(null),
    hourlyLimit: accountShape.hourlyLimit.optional(),
    dailyLimit: accountShape.dailyLimit.optional(),
    ratePerSecond: accountShape.ratePerSecond.optional(),
    timezone: accountShape.timezone.default('UTC'),
    active: accountShape.active.default(true),
    dkim: accountShape.dkim.default(null),
    bounceDomain: accountShape.bounceDomain.default(null),
    imap: accountShape.imap.default(null),
    auth: accountShape.auth.default(null),
    limitWindow: accountShape.limitWindow.optional(),
    preset: accountShape.preset.default(null),
    sendingWindow: accountShape.sendingWindow.default(null),
    warmup: accountShape.warmup.default(null),
    minGapSeconds: accountShape.minGapSeconds.default(null),
    maxGapSeconds: accountShape.maxGapSeconds.default(null),
    maxConnections: accountShape.maxConnections.optional(),
  })
  .strict()
  .superRefine((b, check) => {
    for (const field of ['hourlyLimit', 'dailyLimit'] as const) {
      if (b[field] === undefined && !b.preset) check.addIssue({ code: 'custom', path: [field], message: 'required (0 = no limit), unless a preset gives it' });
    }
  })
  .refine(gapsInOrder, { message: 'must not be less than minGapSeconds', path: ['maxGapSeconds'] });
const patchAccountBody = z
  .object({
    ...accountShape,
    /** Lifts a pause for the bounce or complaint rate (health `paused`); only `true` means anything. */
    resume: z.literal(true, { error: 'must be true (it lifts a pause for the bounce or complaint rate)' }),
  })
  .partial()
  .strict()
  .refine(gapsInOrder, { message: 'must not be less than minGapSeconds', path: ['maxGapSeconds'] });

/** A deleted account's worker gets this long to finish its sends in flight (checked every DELETE_POLL_MS). */
const DELETE_WAIT_MS = 10_000;
const DELETE_POLL_MS = 100;

const count = z.number().int();
/** An account as its owner sees it: never a password, a DKIM key or an OAuth2 secret. */
const accountReply = z.object({
  id,
  serverId: id,
  email: z.string(),
  username: z.string().nullable(),
  hasPassword: z.boolean(),
  hourlyLimit: count,
  dailyLimit: count,
  ratePerSecond: z.number().nullable(),
  timezone: z.string(),
  active: z.boolean(),
  createdAt: timestamp,
  limitWindow: z.enum(LIMIT_WINDOW_KINDS),
  preset: z.enum(PRESET_NAMES).nullable(),
  sendingWindow: z.object({ timezone: z.string(), days: z.array(z.enum(WEEKDAY_NAMES)), start: z.string(), end: z.string() }).nullable(),
  warmup: z.object({ startPerDay: count, increasePerDay: count }).nullable(),
  minGapSeconds: count.nullable(),
  maxGapSeconds: count.nullable(),
  maxConnections: count.nullable(),
  bounceDomain: z.string().optional().describe('only where configured'),
  imap: z
    .object({
      host: z.string(),
      port: count,
      security: z.enum(SECURITY_MODES),
      username: z.string().nullable(),
      mailbox: z.string(),
      hasPassword: z.boolean(),
      status: z.object({ state: z.enum(MAILBOX_STATES), checkedAt: timestamp.nullable(), reason: z.string().optional() }),
    })
    .optional()
    .describe('only where configured; `status` is how reading it goes'),
  dkim: z.object({ domain: z.string(), selector: z.string() }).optional().describe('only where configured'),
  auth: z
    .object({ type: z.literal('oauth2'), clientId: z.string(), tokenUrl: z.string(), user: z.string().describe("the one given, else the account's address") })
    .optional()
    .describe('only where configured'),
  usage: z.object({
    sentThisHour: count,
    sentToday: count,
    hourlyLimit: count,
    dailyLimit: count,
    effectiveDailyLimit: count.describe("today's daily limit after warm-up"),
    nextSendAt: timestamp.nullable().describe('when it may send next; null: now'),
  }),
  health: healthReply,
});

const unknownServer = () => invalid('serverId', 'no such SMTP server');

/** An account logs in with a password or with OAuth2, not both. */
function assertOneAuth(body: { password?: string | null; auth?: unknown }): void {
  if (body.auth && body.password) throw invalid('auth', 'give either a password or auth (OAuth2), not both');
}

export function accountRoutes(app: ZodApp, ctx: AppContext): void {
  /**
   * A token URL whose host is an address the egress policy refuses (as an SMTP server's host, see
   * servers.ts); a name is checked on each request, when it is resolved (smtp/oauthTokens.ts).
   */
  const assertTokenUrlAllowed = (auth: { tokenUrl: string } | null | undefined) => {
    if (!auth) return;
    const host = tokenUrlHost(new URL(auth.tokenUrl));
    if (ctx.config.smtpEgress.refusesLiteral(host)) {
      throw invalid('auth.tokenUrl', `${host} is an address this installation allows no connections to (its operator's MAILPILOT_SMTP_DENY / MAILPILOT_SMTP_ALLOW)`);
    }
  };

  const assertTimezone = async (db: Queryable, timezone: string | undefined) => {
    if (timezone !== undefined && !(await timezoneKnown(db, timezone))) {
      throw invalid('timezone', `the database does not know the time zone "${timezone}"`);
    }
  };

  /**
   * A stored password goes only where its owner sent it: moving an account with one to another
   * server needs the password again (or `password: null`).
   */
  const assertPasswordFollows = async (
    db: Queryable,
    userId: number,
    id: number,
    changes: { serverId?: number; password?: string | null; auth?: unknown },
  ) => {
    if (changes.serverId === undefined || changes.password !== undefined || changes.auth !== undefined) return;
    const current = await getAccount(db, userId, id);
    if (current && current.serverId !== changes.serverId && current.hasPassword) {
      throw invalid('password', 'moving the account to another server needs its password again (or null to use that server without one)');
    }
    if (current && current.serverId !== changes.serverId && current.auth) {
      throw invalid('auth', 'moving the account to another server needs its OAuth2 grant again (auth), or null to use that server without it');
    }
  };

  /** The accounts as replied: usage read in one query for all of them, health as of now. */
  const present = async (db: Queryable, userId: number, accounts: SmtpAccount[]) => {
    const now = ctx.clock.now();
    const ids = accounts.map((a) => a.id);
    const usage = await readAccountUsage(db, ids, now);
    const mailboxes = await mailboxViews(db, userId, ids);
    return accounts.map(({ health, healthUntil, healthReason, dkim, auth, connectionCap, recoveryRate, recoveryUntil, bounceDomain, ...fields }) => {
      const imap = mailboxes.get(fields.id);
      return {
        ...fields,
        ...(bounceDomain ? { bounceDomain } : {}),
        // Only where configured, never the password; `status` is how reading it goes, apart from the SMTP `health`.
        ...(imap ? { imap } : {}),
        // Only where configured, and never the key or the OAuth2 secrets.
        ...(dkim ? { dkim } : {}),
        ...(auth ? { auth } : {}),
        usage: usage.get(fields.id)!,
        health: {
          ...healthView({ active: fields.active, health, healthUntil, healthReason }, now),
          ...learnedView({ connectionCap, recoveryRate, recoveryUntil }, now),
        },
      };
    });
  };
  const presentOne = async (db: Queryable, userId: number, account: SmtpAccount) => (await present(db, userId, [account]))[0]!;

  app.post('/api/v1/smtp-accounts', { schema: { body: createAccountBody, response: { 201: accountReply } } }, async (req, reply) => {
    const userId = requireUser(req.caller);
    assertOneAuth(req.body);
    assertTokenUrlAllowed(req.body.auth);
    await assertTimezone(req.db, req.body.timezone);
    const { imap, ...given } = req.body;
    const b = { ...given, ...presetFill(given.preset, given) };
    const fields = {
      ...b,
      hourlyLimit: b.hourlyLimit!,
      dailyLimit: b.dailyLimit!,
      ratePerSecond: b.ratePerSecond ?? null,
      limitWindow: b.limitWindow ?? 'calendar',
      maxConnections: b.maxConnections ?? null,
      auth: oauthSettings(given.auth)!,
    };
    const account = await insertAccount(req.db, ctx.secrets.secretKey, userId, fields, ctx.clock.now());
    if (!account) throw unknownServer();
    if (imap) await saveMailbox(req.db, ctx.secrets.secretKey, userId, account.id, imap, ctx.clock.now());
    await reconsiderPaused({ ...ctx, db: req.db, events: req.events }, userId);
    req.events.emit({ type: 'engine.wake', userId });
    return reply.status(201).send(await presentOne(req.db, userId, account));
  });

  app.get('/api/v1/smtp-accounts', { schema: { querystring: pageQuery, response: { 200: pageOf(accountReply) } } }, async (req) => {
    const userId = requireUser(req.caller);
    const rows = await listAccounts(req.db, userId, req.query.after ?? 0, req.query.limit + 1);
    const { items, next } = page(rows, req.query.limit);
    return { items: await present(req.db, userId, items), next };
  });

  app.get('/api/v1/smtp-accounts/:id', { schema: { params: idParams, response: { 200: accountReply } } }, async (req) => {
    const userId = requireUser(req.caller);
    const account = await getAccount(req.db, userId, req.params.id);
    if (!account) throw notFound('SMTP account');
    return presentOne(req.db, userId, account);
  });

  app.patch('/api/v1/smtp-accounts/:id', { schema: { params: idParams, body: patchAccountBody, response: { 200: accountReply } } }, async (req) => {
    const userId = requireUser(req.caller);
    assertOneAuth(req.body);
    assertTokenUrlAllowed(req.body.auth);
    await assertTimezone(req.db, req.body.timezone);
    await assertPasswordFollows(req.db, userId, req.params.id, req.body);
    const { imap, resume, ...given } = req.body;
    const changes = { ...given, ...presetFill(given.preset, given), auth: oauthSettings(given.auth) };
    const outcome = await updateAccount(req.db, ctx.secrets.secretKey, userId, req.params.id, changes);
    if (outcome === 'not_found') throw notFound('SMTP account');
    if (outcome === 'bad_server') throw unknownServer();
    if (imap !== undefined) await saveMailbox(req.db, ctx.secrets.secretKey, userId, outcome.id, imap, ctx.clock.now());
    const resumed = resume === true && (await onResumed(req.db, userId, outcome.id, ctx.clock.now()));
    const reset = await onReconfigured(req.db, outcome.id, given);
    const account = reset || resumed ? (await getAccount(req.db, userId, outcome.id))! : outcome;
    await reconsiderPaused({ ...ctx, db: req.db, events: req.events }, userId);
    // Its worker, in whichever process, stops before its next send; a new one starts with the new settings if it may still send.
    req.events.emit({ type: 'account.changed', userId, accountIds: [outcome.id] });
    req.events.emit({ type: 'engine.wake', userId });
    return presentOne(req.db, userId, account);
  });

  /**
   * An account that is sending is switched off first (committed at once: per-query scope), so its
   * worker stops before its next send and hands its claimed messages back; it is deleted once the
   * worker has let go. Its campaigns' remaining messages wait for the user's other accounts.
   */
  app.delete('/api/v1/smtp-accounts/:id', { schema: { params: idParams, response: { 204: noContent } }, config: { dbScope: 'per-query' } }, async (req, reply) => {
    const userId = requireUser(req.caller);
    const id = req.params.id;
    let outcome = await deleteAccount(req.db, userId, id);
    if (outcome === 'not_found') throw notFound('SMTP account');
    if (outcome === 'sending') {
      await updateAccount(req.db, ctx.secrets.secretKey, userId, id, { active: false });
      req.events.emit({ type: 'account.changed', userId, accountIds: [id] });
      for (const deadline = performance.now() + DELETE_WAIT_MS; outcome === 'sending' && performance.now() < deadline; ) {
        await sleep(DELETE_POLL_MS);
        outcome = await deleteAccount(req.db, userId, id);
      }
    }
    req.events.emit({ type: 'engine.wake', userId });
    if (outcome === 'sending') {
      throw conflict('account_sending', `the account is switched off, but its worker is still finishing the sends in flight after ${DELETE_WAIT_MS / 1000} s: delete it again in a moment`);
    }
    return reply.status(204).send();
  });
}
