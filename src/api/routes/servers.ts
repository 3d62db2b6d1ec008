import { isIP } from 'node:net';
import { z } from 'zod';
import { reconsiderPaused } from '../../campaigns/autoPause.ts';
import type { AppContext } from '../../context.ts';
import { accountIdsOnServer } from '../../db/smtpAccounts.ts';
import { deleteServer, getServer, insertServer, listServers, updateServer, type SmtpServer } from '../../db/smtpServers.ts';
import { onServerMoved } from '../../engine/accountHealth.ts';
import { hostLiteral } from '../../net/egressPolicy.ts';
import type { ZodApp } from '../app.ts';
import { requireUser } from '../auth.ts';
import { conflict, invalid, notFound } from '../../errors.ts';
import { SECURITY_MODES } from '../../states.ts';
import { displayName, id, idParams, noContent, page, pageOf, pageQuery, timestamp } from '../schemas.ts';

// Letters, digits, hyphens and (for container and intranet names) underscores, in dot-separated labels.
const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/;

/** Account ids named in one account.changed event: 500 of them take under 6,000 of the 8,000 bytes a PostgreSQL notification holds. */
const ACCOUNTS_PER_EVENT = 500;

const isHost = (s: string) => isIP(s) !== 0 || HOSTNAME.test(s);

// Not trimmed: a host with stray whitespace or line breaks is a mistake to report, not to repair.
export const host = z.string().max(253).refine(isHost, 'must be a hostname or an IP address');

const serverShape = {
  name: displayName,
  host,
  port: z.number().int().min(1).max(65535),
  security: z.enum(SECURITY_MODES),
  maxConnections: z.number().int().min(1).max(100),
  active: z.boolean(),
};

const createServerBody = z
  .object({ ...serverShape, maxConnections: serverShape.maxConnections.default(10), active: serverShape.active.default(true) })
  .strict();
const patchServerBody = z.object(serverShape).partial().strict();

const serverReply = z.object({
  id,
  name: z.string(),
  host: z.string(),
  port: z.number().int(),
  security: z.enum(SECURITY_MODES),
  maxConnections: z.number().int(),
  active: z.boolean(),
  createdAt: timestamp,
});
const patchedServerReply = serverReply.extend({
  passwordsCleared: z.array(id).describe("the accounts whose stored password (and OAuth2 grant) was cleared because the server's host, port or security changed"),
});

/** The host as compared: an address in its normal form, a name without case or trailing dot. */
const hostKey = (host: string) => hostLiteral(host) ?? host.toLowerCase().replace(/\.$/, '');

/** Whether a change sends the server's connections somewhere else (see onServerMoved). */
const moved = (before: SmtpServer, after: SmtpServer) =>
  hostKey(before.host) !== hostKey(after.host) || before.port !== after.port || before.security !== after.security;

export function serverRoutes(app: ZodApp, ctx: AppContext): void {
  /** A host that is an address the egress policy refuses (API.md "Operators"); names are checked when connecting. */
  const assertHostAllowed = (host: string | undefined) => {
    if (host !== undefined && ctx.config.smtpEgress.refusesLiteral(host)) {
      throw invalid('host', `${host} is an address this installation allows no SMTP connections to (its operator's MAILPILOT_SMTP_DENY / MAILPILOT_SMTP_ALLOW)`);
    }
  };

  app.post('/api/v1/smtp-servers', { schema: { body: createServerBody, response: { 201: serverReply } } }, async (req, reply) => {
    const userId = requireUser(req.caller);
    assertHostAllowed(req.body.host);
    const server = await insertServer(req.db, userId, req.body, ctx.clock.now());
    req.events.emit({ type: 'engine.wake', userId });
    return reply.status(201).send(server);
  });

  app.get('/api/v1/smtp-servers', { schema: { querystring: pageQuery, response: { 200: pageOf(serverReply) } } }, async (req) => {
    const userId = requireUser(req.caller);
    const rows = await listServers(req.db, userId, req.query.after ?? 0, req.query.limit + 1);
    return page(rows, req.query.limit);
  });

  app.get('/api/v1/smtp-servers/:id', { schema: { params: idParams, response: { 200: serverReply } } }, async (req) => {
    const server = await getServer(req.db, requireUser(req.caller), req.params.id);
    if (!server) throw notFound('SMTP server');
    return server;
  });

  app.patch('/api/v1/smtp-servers/:id', { schema: { params: idParams, body: patchServerBody, response: { 200: patchedServerReply } } }, async (req) => {
    const userId = requireUser(req.caller);
    assertHostAllowed(req.body.host);
    const before = await getServer(req.db, userId, req.params.id);
    const server = before && (await updateServer(req.db, userId, req.params.id, req.body));
    if (!before || !server) throw notFound('SMTP server');
    const passwordsCleared = moved(before, server) ? await onServerMoved(req.db, userId, server.id) : [];
    if (server.active && !before.active) await reconsiderPaused({ ...ctx, db: req.db, events: req.events }, userId);
    // The workers of its accounts, in whichever process, stop before their next send; new ones start
    // on the new settings if they may. In slices, so each event fits in one notification.
    const accountIds = await accountIdsOnServer(req.db, userId, server.id);
    for (let i = 0; i < accountIds.length; i += ACCOUNTS_PER_EVENT) {
      req.events.emit({ type: 'account.changed', userId, accountIds: accountIds.slice(i, i + ACCOUNTS_PER_EVENT) });
    }
    req.events.emit({ type: 'engine.wake', userId });
    return { ...server, passwordsCleared };
  });

  app.delete('/api/v1/smtp-servers/:id', { schema: { params: idParams, response: { 204: noContent } } }, async (req, reply) => {
    const userId = requireUser(req.caller);
    const outcome = await deleteServer(req.db, userId, req.params.id);
    if (outcome === 'not_found') throw notFound('SMTP server');
    if (outcome === 'in_use') throw conflict('server_in_use', 'SMTP accounts still use this server: delete or move them first');
    req.events.emit({ type: 'engine.wake', userId });
    return reply.status(204).send();
  });
}
