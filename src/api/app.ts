import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type RawReplyDefaultExpression,
  type RawRequestDefaultExpression,
  type RawServerDefault,
} from 'fastify';
import {
  hasZodFastifySchemaValidationErrors,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import type { AppContext } from '../context.ts';
import { authenticate, type Caller } from './auth.ts';
import { ApiError } from './errors.ts';
import { accountRoutes } from './routes/accounts.ts';
import { campaignReportRoutes } from './routes/campaignReports.ts';
import { campaignRoutes } from './routes/campaigns.ts';
import { dashboardRoutes } from './routes/dashboard.ts';
import { healthRoutes } from './routes/health.ts';
import { listRoutes } from './routes/lists.ts';
import { metricsRoutes } from './routes/metrics.ts';
import { serverRoutes } from './routes/servers.ts';
import { unsubscribeRoutes } from './routes/unsubscribe.ts';
import { userRoutes } from './routes/users.ts';

export type ZodApp = FastifyInstance<
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
  FastifyBaseLogger,
  ZodTypeProvider
>;

declare module 'fastify' {
  interface FastifyRequest {
    caller: Caller;
  }
}

/** Request bodies above this size are refused with 413 (a CSV import is streamed, not buffered). */
export const BODY_LIMIT_BYTES = 10 * 1024 * 1024;

export async function buildApp(ctx: AppContext): Promise<FastifyInstance> {
  const app = Fastify({ logger: false, bodyLimit: BODY_LIMIT_BYTES });
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.decorateRequest('caller', null as never);
  // POST /start and friends are often sent with a JSON content type and no body: that is no body, not an error.
  const parseJson = app.getDefaultJsonParser('error', 'error');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    if (body === '') done(null, undefined);
    else parseJson(req, body as string, done);
  });

  app.addHook('onRequest', async (req) => {
    if (req.url.startsWith('/api/')) req.caller = await authenticate(ctx, req);
  });

  app.setErrorHandler((err: FastifyError, req, reply) => {
    if (err instanceof ApiError) return reply.status(err.status).send({ error: { code: err.code, message: err.message } });
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
      return reply.status(400).send({ error: { code: 'malformed_json', message: 'the request body is not valid JSON' } });
    }
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return reply.status(413).send({ error: { code: 'body_too_large', message: `request bodies are limited to ${BODY_LIMIT_BYTES} bytes` } });
    }
    if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      return reply.status(415).send({ error: { code: 'unsupported_media_type', message: 'send application/json (or text/csv where documented)' } });
    }
    if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) {
      return reply.status(err.statusCode).send({ error: { code: 'bad_request', message: err.message } });
    }
    ctx.log.error({ err, url: req.url }, 'request failed');
    return reply.status(500).send({ error: { code: 'internal', message: 'internal error; the server log has the details' } });
  });

  app.setNotFoundHandler((req, reply) =>
    reply.status(404).send({ error: { code: 'not_found', message: `no route ${req.method} ${req.url.split('?')[0]}` } }),
  );

  const api = app.withTypeProvider<ZodTypeProvider>();
  for (const routes of [healthRoutes, userRoutes, serverRoutes, accountRoutes, listRoutes, campaignRoutes, unsubscribeRoutes, metricsRoutes, campaignReportRoutes, dashboardRoutes]) {
    routes(api, ctx);
  }
  return app;
}
