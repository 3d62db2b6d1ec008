import { z } from 'zod';
import { resumeForUsableAccount } from '../../campaigns/autoPause.ts';
import type { AppContext } from '../../context.ts';
import { healthView } from '../../db/accountHealth.ts';
import { mailboxViews, saveMailbox } from '../../db/accountMailboxes.ts';
import type { Queryable } from '../../db/database.ts';
import {
  deleteAccount,
  getAccount,
  insertAccount,
  listAccounts,
  timezoneKnown,
  updateAccount,
  type SmtpAccount,
} from '../../db/smtpAccounts.ts';
import { readUsage } from '../../db/usage.ts';
import { onReconfigured } from '../../engine/accountHealth.ts';
import { dkimKeyProblem } from '../../smtp/dkim.ts';
import type { ZodApp } from '../app.ts';
import { requireUser } from '../auth.ts';
import { conflict, invalid, notFound } from '../../errors.ts';
import { SECURITY_MODES } from '../../states.ts';
import { email, idParams, page, pageQuery } from '../schemas.ts';
import { host } from './servers.ts';

const MAX_INT = 2 ** 31 - 1;
const noLineBreaks = (s: string) => !/[\r\n\0]/.test(s);

/** IANA names only: Intl also takes UTC offsets, which PostgreSQL reads with the opposite sign. */
function isIanaTimeZone(name: string): boolean {
  if (!/^[A-Za-z][A-Za-z0-9_+-]*(?:\/[A-Za-z0-9_+-]+)*$/.test(name)) return false;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

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

const accountShape = {
  serverId: z.number().int().positive().max(MAX_INT),
  email,
  username: z.string().min(1).max(254).refine(noLineBreaks, 'must not contain line breaks or NUL').nullable(),
  password: z.string().min(1).max(1024).refine(noLineBreaks, 'must not contain line breaks or NUL').nullable(),
  hourlyLimit: z.number().int().min(0).max(MAX_INT),
  dailyLimit: z.number().int().min(0).max(MAX_INT),
  ratePerSecond: z.number().positive().max(10_000).nullable(),
  timezone: z.string().max(64).refine(isIanaTimeZone, 'must be an IANA time zone name such as Europe/Paris'),
  active: z.boolean(),
  /** Signs every message of the account; null = no signature. */
  dkim: dkimSettings.nullable(),
  /** Envelope senders are VERP addresses at this domain, whose MX points at the inbound port; null = the account's address. */
  bounceDomain: z.string().trim().toLowerCase().regex(DNS_NAME, 'must be a domain name such as bounces.example.com').nullable(),
  imap: imapSettings.nullable(),
};

const createAccountBody = z
  .object({
    ...accountShape,
    username: accountShape.username.default(null),
    password: accountShape.password.default(null),
    ratePerSecond: accountShape.ratePerSecond.default(null),
    timezone: accountShape.timezone.default('UTC'),
    active: accountShape.active.default(true),
    dkim: accountShape.dkim.default(null),
    bounceDomain: accountShape.bounceDomain.default(null),
    imap: accountShape.imap.default(null),
  })
  .strict();
const patchAccountBody = z.object(accountShape).partial().strict();

const unknownServer = () => invalid('serverId', 'no such SMTP server');

export function accountRoutes(app: ZodApp, ctx: AppContext): void {

  const assertTimezone = async (db: Queryable, timezone: string | undefined) => {
    if (timezone !== undefined && !(await timezoneKnown(db, timezone))) {
      throw invalid('timezone', `the database does not know the time zone "${timezone}"`);
    }
  };

  /** The accounts as replied: usage read in one query for all of them, health as of now. */
  const present = async (db: Queryable, userId: number, accounts: SmtpAccount[]) => {
    const now = ctx.clock.now();
    const ids = accounts.map((a) => a.id);
    const usage = await readUsage(db, ids, now);
    const mailboxes = await mailboxViews(db, userId, ids);
    return accounts.map(({ health, healthUntil, healthReason, dkim, bounceDomain, ...fields }) => {
      const u = usage.get(fields.id);
      const imap = mailboxes.get(fields.id);
      return {
        ...fields,
        ...(bounceDomain ? { bounceDomain } : {}),
        // Only where configured, never the password; `status` is how reading it goes, apart from the SMTP `health`.
        ...(imap ? { imap } : {}),
        // Only where configured, and never the key.
        ...(dkim ? { dkim } : {}),
        usage: {
          sentThisHour: u?.sentThisHour ?? 0,
          sentToday: u?.sentToday ?? 0,
          hourlyLimit: fields.hourlyLimit,
          dailyLimit: fields.dailyLimit,
        },
        health: healthView({ active: fields.active, health, healthUntil, healthReason }, now),
      };
    });
  };
  const presentOne = async (db: Queryable, userId: number, account: SmtpAccount) => (await present(db, userId, [account]))[0]!;

  app.post('/api/v1/smtp-accounts', { schema: { body: createAccountBody } }, async (req, reply) => {
    const userId = requireUser(req.caller);
    await assertTimezone(req.db, req.body.timezone);
    const { imap, ...fields } = req.body;
    const account = await insertAccount(req.db, ctx.secrets.secretKey, userId, fields, ctx.clock.now());
    if (!account) throw unknownServer();
    if (imap) await saveMailbox(req.db, ctx.secrets.secretKey, userId, account.id, imap, ctx.clock.now());
    await resumeForUsableAccount({ ...ctx, db: req.db, events: req.events }, userId);
    req.events.emit({ type: 'engine.wake', userId });
    return reply.status(201).send(await presentOne(req.db, userId, account));
  });

  app.get('/api/v1/smtp-accounts', { schema: { querystring: pageQuery } }, async (req) => {
    const userId = requireUser(req.caller);
    const rows = await listAccounts(req.db, userId, req.query.after ?? 0, req.query.limit + 1);
    const { items, next } = page(rows, req.query.limit);
    return { items: await present(req.db, userId, items), next };
  });

  app.get('/api/v1/smtp-accounts/:id', { schema: { params: idParams } }, async (req) => {
    const userId = requireUser(req.caller);
    const account = await getAccount(req.db, userId, req.params.id);
    if (!account) throw notFound('SMTP account');
    return presentOne(req.db, userId, account);
  });

  app.patch('/api/v1/smtp-accounts/:id', { schema: { params: idParams, body: patchAccountBody } }, async (req) => {
    const userId = requireUser(req.caller);
    await assertTimezone(req.db, req.body.timezone);
    const { imap, ...changes } = req.body;
    const outcome = await updateAccount(req.db, ctx.secrets.secretKey, userId, req.params.id, changes);
    if (outcome === 'not_found') throw notFound('SMTP account');
    if (outcome === 'bad_server') throw unknownServer();
    if (imap !== undefined) await saveMailbox(req.db, ctx.secrets.secretKey, userId, outcome.id, imap, ctx.clock.now());
    const account = (await onReconfigured(req.db, outcome.id, changes)) ? (await getAccount(req.db, userId, outcome.id))! : outcome;
    await resumeForUsableAccount({ ...ctx, db: req.db, events: req.events }, userId);
    req.events.emit({ type: 'engine.wake', userId });
    return presentOne(req.db, userId, account);
  });

  app.delete('/api/v1/smtp-accounts/:id', { schema: { params: idParams } }, async (req, reply) => {
    const userId = requireUser(req.caller);
    const outcome = await deleteAccount(req.db, userId, req.params.id);
    if (outcome === 'not_found') throw notFound('SMTP account');
    if (outcome === 'in_use') {
      throw conflict('account_in_use', 'a scheduled, running or paused campaign may still send through this account: stop it first');
    }
    req.events.emit({ type: 'engine.wake', userId });
    return reply.status(204).send();
  });
}
