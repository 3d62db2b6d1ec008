import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type RawReplyDefaultExpression,
  type RawRequestDefaultExpression,
  type RawServerDefault,
} from 'fastify';
import { hasZodFastifySchemaValidationErrors, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { MAX_TOKEN_CHARS } from '../campaigns/unsubscribe.ts';
import type { AppContext } from '../context.ts';
import { authenticate, type Caller } from './auth.ts';
import { AppError } from '../errors.ts';
import { noQuery } from './schemas.ts';
import { boundRequestBodies, clientErrorHandler, httpServerOptions } from './httpTimeouts.ts';
import { BODY_LIMIT_BYTES, parseJsonBody } from './jsonBody.ts';
import { OPENAPI_PATH, registerOpenApi } from './openapi.ts';
import { bindRequestDatabase, noAmbientDatabase, settleRequestTransactions } from './requestDatabase.ts';
import { accountRoutes } from './routes/accounts.ts';
import { campaignEventRoutes } from './routes/campaignEvents.ts';
import { campaignTrialRoutes } from './routes/campaignTrials.ts';
import { campaignReportRoutes } from './routes/campaignReports.ts';
import { campaignRoutes } from './routes/campaigns.ts';
import { dashboardRoutes } from './routes/dashboard.ts';
import { domainCapRoutes } from './routes/domainCaps.ts';
import { healthRoutes, readinessRoutes } from './routes/health.ts';
import { keyRoutes } from './routes/keys.ts';
import { listRoutes } from './routes/lists.ts';
import { metricsRoutes } from './routes/metrics.ts';
import { recipientThrottleRoutes } from './routes/recipientThrottles.ts';
import { serverRoutes } from './routes/servers.ts';
import { statsRoutes } from './routes/stats.ts';
import { suppressionRoutes } from './routes/suppressions.ts';
import { suppressionFileRoutes } from './routes/suppressionFiles.ts';
import { unsubscribeRoutes } from './routes/unsubscribe.ts';
import { userRoutes } from './routes/users.ts';
import { contactRoutes } from './routes/contacts.ts';
import { MailDomains } from '../contacts/mailDomains.ts';

export { BODY_LIMIT_BYTES };

export type ZodApp = FastifyInstance<
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
  FastifyBaseLogger,
  ZodTypeProvider
>;

declare module 'fastify' {
  interface FastifyRequest {
    /** Who sent the key (on /api/ routes; null on the routes that take none). */
    caller: Caller;
  }
}

export async function buildApp(ctx: AppContext): Promise<FastifyInstance> {
  const app = Fastify({
    logger: false,
    bodyLimit: BODY_LIMIT_BYTES,
    http: httpServerOptions(ctx.config.http),
    clientErrorHandler: clientErrorHandler(ctx.config.http),
    // Unsubscribe tokens carry the address: the router's default (100 characters) cut long ones off with a 414.
    routerOptions: { maxParamLength: MAX_TOKEN_CHARS },
  });
  app.setValidatorCompiler(validatorCompiler);
  // Reply schemas describe replies (the OpenAPI document, the routes' types); zod's serializer would
  // parse each reply through them, dropping a field they miss and failing a reply they got wrong.
  app.setSerializerCompiler(() => (data) => JSON.stringify(data));
  app.decorateRequest('caller', null as never);
  app.decorateRequest('db', null as never);
  app.decorateRequest('afterCommit', null as never);
  app.decorateRequest('events', null as never);
  app.addContentTypeParser('application/json', { parseAs: 'string' }, parseJsonBody(app));

  // First, so a body is bounded in time even when the request is refused before it is read.
  boundRequestBodies(app, ctx.config.http);
  app.addHook('onRequest', async (req) => {
    if (req.url.startsWith('/api/') && req.url.split('?')[0] !== OPENAPI_PATH) req.caller = await authenticate(ctx, req);
    bindRequestDatabase(req, ctx.db, req.caller, ctx.events);
  });
  settleRequestTransactions(app);

  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (err instanceof AppError) return reply.status(err.status).send({ error: { code: err.code, message: err.message } });
    if (hasZodFastifySchemaValidationErrors(err)) {
      const issue = err.validation[0];
      let path = issue?.instancePath.replace(/^\//, '').replaceAll('/', '.') || err.validationContext || 'body';
      // An unknown field is named as the field itself, not as its parent object.
      const unknownKeys = issue?.keyword === 'unrecognized_keys' ? (issue.params.keys as string[]) : [];
      if (unknownKeys.length > 0) path = [path === err.validationContext ? '' : path, unknownKeys[0]].filter(Boolean).join('.');
      const message = `${path}: ${unknownKeys.length > 0 ? 'unknown field' : (issue?.message ?? 'invalid')}`;
      return reply.status(422).send({ error: { code: 'invalid_field', message } });
    }
    if (err.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || err.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || err instanceof SyntaxError) {
      return reply.status(400).send({ error: { code: 'malformed_json', message: 'body: not valid JSON' } });
    }
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return reply.status(413).send({ error: { code: 'body_too_large', message: `body: larger than the limit of ${BODY_LIMIT_BYTES} bytes` } });
    }
    if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      return reply
        .status(415)
        .send({ error: { code: 'unsupported_media_type', message: 'body: send application/json (or text/csv where documented)' } });
    }
    if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
      return reply.status(err.statusCode).send({ error: { code: 'bad_request', message: err.message } });
    }
    ctx.log.error({ err, url: req.url.split('?')[0] }, 'request failed');
    return reply.status(500).send({ error: { code: 'internal', message: 'internal error; the server log has the details' } });
  });

  app.setNotFoundHandler((req, reply) =>
    reply.status(404).send({ error: { code: 'not_found', message: `no route ${req.method} ${req.url.split('?')[0]}` } }),
  );

  // A route that declares no query parameters takes none: an unknown one is refused like an unknown field.
  app.addHook('onRoute', (route) => {
    if (route.url.startsWith('/api/') && route.schema?.querystring === undefined) route.schema = { ...route.schema, querystring: noQuery };
  });
  await registerOpenApi(app);
  const api = app.withTypeProvider<ZodTypeProvider>();
  // Routes see no ctx.db: each request queries through req.db, set above from the caller's key.
  const routeCtx: AppContext = { ...ctx, db: noAmbientDatabase };
  const routes = [
    healthRoutes,
    userRoutes,
    keyRoutes,
    serverRoutes,
    accountRoutes,
    domainCapRoutes,
    recipientThrottleRoutes,
    campaignRoutes,
    campaignTrialRoutes,
    campaignEventRoutes,
    suppressionRoutes,
    suppressionFileRoutes,
    statsRoutes,
    campaignReportRoutes,
    dashboardRoutes,
  ];
  for (const register of routes) register(api, routeCtx);
  // One DNS resolver and cache per process, for address verification on import and on demand.
  const mailDomains = new MailDomains(ctx.config.dnsServers, () => ctx.clock.now().getTime());
  listRoutes(api, routeCtx, mailDomains);
  contactRoutes(api, routeCtx, mailDomains);
  // Unsubscribe links carry no key: the signed token names the user, and the route scopes itself to it.
  unsubscribeRoutes(api, ctx);
  // Metrics describe every tenant: the route checks for the admin key and reads the whole database.
  metricsRoutes(api, ctx);
  // Readiness asks the process's own database, before any tenant is known.
  readinessRoutes(api, ctx);
  return app;
}
