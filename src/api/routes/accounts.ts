import { z } from 'zod';
import { resumeForUsableAccount } from '../../campaigns/autoPause.ts';
import type { AppContext } from '../../context.ts';
import { healthView } from '../../db/accountHealth.ts';
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
import { email, idParams, page, pageQuery } from '../schemas.ts';

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

  /**
   * A stored password goes only where its owner sent it: moving an account with one to another
   * server needs the password again (or `password: null`).
   */
  const assertPasswordFollows = async (db: Queryable, userId: number, id: number, changes: { serverId?: number; password?: string | null }) => {
    if (changes.serverId === undefined || changes.password !== undefined) return;
    const current = await getAccount(db, userId, id);
    if (current?.hasPassword && current.serverId !== changes.serverId) {
      throw invalid('password', 'moving the account to another server needs its password again (or null to use that server without one)');
    }
  };

  /** The accounts as replied: usage read in one query for all of them, health as of now. */
  const present = async (db: Queryable, accounts: SmtpAccount[]) => {
    const now = ctx.clock.now();
    const usage = await readUsage(db, accounts.map((a) => a.id), now);
    return accounts.map(({ health, healthUntil, healthReason, dkim, ...fields }) => {
      const u = usage.get(fields.id);
      return {
        ...fields,
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
  const presentOne = async (db: Queryable, account: SmtpAccount) => (await present(db, [account]))[0]!;

  app.post('/api/v1/smtp-accounts', { schema: { body: createAccountBody } }, async (req, reply) => {
    const userId = requireUser(req.caller);
    await assertTimezone(req.db, req.body.timezone);
    const account = await insertAccount(req.db, ctx.secrets.secretKey, userId, req.body, ctx.clock.now());
    if (!account) throw unknownServer();
    await resumeForUsableAccount({ ...ctx, db: req.db, events: req.events }, userId);
    req.events.emit({ type: 'engine.wake', userId });
    return reply.status(201).send(await presentOne(req.db, account));
  });

  app.get('/api/v1/smtp-accounts', { schema: { querystring: pageQuery } }, async (req) => {
    const userId = requireUser(req.caller);
    const rows = await listAccounts(req.db, userId, req.query.after ?? 0, req.query.limit + 1);
    const { items, next } = page(rows, req.query.limit);
    return { items: await present(req.db, items), next };
  });

  app.get('/api/v1/smtp-accounts/:id', { schema: { params: idParams } }, async (req) => {
    const account = await getAccount(req.db, requireUser(req.caller), req.params.id);
    if (!account) throw notFound('SMTP account');
    return presentOne(req.db, account);
  });

  app.patch('/api/v1/smtp-accounts/:id', { schema: { params: idParams, body: patchAccountBody } }, async (req) => {
    const userId = requireUser(req.caller);
    await assertTimezone(req.db, req.body.timezone);
    await assertPasswordFollows(req.db, userId, req.params.id, req.body);
    const outcome = await updateAccount(req.db, ctx.secrets.secretKey, userId, req.params.id, req.body);
    if (outcome === 'not_found') throw notFound('SMTP account');
    if (outcome === 'bad_server') throw unknownServer();
    const account = (await onReconfigured(req.db, outcome.id, req.body)) ? (await getAccount(req.db, userId, outcome.id))! : outcome;
    await resumeForUsableAccount({ ...ctx, db: req.db, events: req.events }, userId);
    req.events.emit({ type: 'engine.wake', userId });
    return presentOne(req.db, account);
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
