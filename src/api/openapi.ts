import fastifySwagger from '@fastify/swagger';
import type { FastifyInstance } from 'fastify';
import { jsonSchemaTransform } from 'fastify-type-provider-zod';
import { BODY_LIMIT_BYTES, MAX_JSON_DEPTH } from './jsonBody.ts';

/** Served without a key, like /healthz: it describes the API, it holds no data. */
export const OPENAPI_PATH = '/api/v1/openapi.json';

const errorReply = {
  description: 'An error: 400 malformed, 401 no or bad key, 403 not allowed, 404 absent or another user\'s, 409 state conflict, 413 body too large, 415 wrong content type, 422 invalid field (the message starts with its name)',
  type: 'object',
  required: ['error'],
  properties: {
    error: { type: 'object', required: ['code', 'message'], properties: { code: { type: 'string' }, message: { type: 'string' } } },
  },
};

const description = `MailPilot sends email campaigns for many users, each through their own SMTP accounts.

Send \`Authorization: Bearer <key>\`: a user's key sees only that user's resources; the admin key creates users and reads system-wide stats.
Every collection answers \`{items, next}\`: pass \`next\` as \`?after=\` for the following page (null on the last one); \`?limit=\` is 1 to 1000 (default 100).
Request bodies are limited to ${BODY_LIMIT_BYTES} bytes (413 beyond; CSV imports stream and have no limit) and to ${MAX_JSON_DEPTH} levels of JSON nesting.`;

/**
 * The OpenAPI 3 document, generated from the zod schemas that validate each route's requests, so the
 * document cannot drift from what the server accepts. Registered before the routes: it collects them
 * as they are added.
 */
export async function registerOpenApi(app: FastifyInstance): Promise<void> {
  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.0.3',
      info: { title: 'MailPilot', version: 'v1', description },
      components: { securitySchemes: { apiKey: { type: 'http', scheme: 'bearer', description: 'a user\'s API key, or the admin key' } } },
      security: [{ apiKey: [] }],
    },
    transform: (input) => {
      const { schema = {}, url } = jsonSchemaTransform(input) as { schema?: { response?: object }; url: string };
      const resource = /^\/api\/v1\/([^/]+)/.exec(url)?.[1];
      return {
        url,
        schema: {
          ...schema,
          tags: [resource ?? 'public'],
          ...(url.startsWith('/api/') && url !== OPENAPI_PATH ? {} : { security: [] }),
          response: { '4XX': errorReply, ...schema.response },
        },
      };
    },
  });
  app.get(OPENAPI_PATH, async () => app.swagger());
}
