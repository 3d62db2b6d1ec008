import fastifySwagger from '@fastify/swagger';
import type { FastifyInstance } from 'fastify';
import { jsonSchemaTransform } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { BODY_LIMIT_BYTES, MAX_JSON_DEPTH } from './jsonBody.ts';
import { errorReply } from './schemas.ts';

/** Served without a key, like /healthz: it describes the API, it holds no data. */
export const OPENAPI_PATH = '/api/v1/openapi.json';

/**
 * A success reply that is not JSON (a page, a script, a CSV file, an event stream, Prometheus text),
 * as a route's `schema.response` entry: the document names its media type, fastify sends it as is.
 */
export const textReply = (description: string, ...mediaTypes: string[]) => ({
  description,
  content: Object.fromEntries(mediaTypes.map((type) => [type, { schema: { type: 'string' } }])),
});

const documentReply = z
  .object({
    openapi: z.string(),
    info: z.object({ title: z.string(), version: z.string(), description: z.string() }),
    components: z.record(z.string(), z.unknown()),
    security: z.array(z.record(z.string(), z.array(z.string()))),
    paths: z.record(z.string(), z.record(z.string(), z.unknown())),
  })
  .describe('this document (OpenAPI 3.0)');

/**
 * OpenAPI 3.0.3 reads `nullable` as adding no value outside an `enum`: a nullable enum must list null
 * itself, which zod's converter leaves out. Fixed in place over a converted schema.
 */
function listNullInEnums(node: unknown): void {
  if (Array.isArray(node)) return node.forEach(listNullInEnums);
  if (typeof node !== 'object' || node === null) return;
  const schema = node as Record<string, unknown>;
  if (schema.nullable === true && Array.isArray(schema.enum) && !schema.enum.includes(null)) schema.enum.push(null);
  Object.values(schema).forEach(listNullInEnums);
}

/** Every operation's errors, written once in components and referred to. */
const ERROR_RESPONSE = { $ref: '#/components/responses/Error' };

type Document = { paths?: Record<string, Record<string, { responses?: Record<string, unknown> }>>; components?: Record<string, unknown> };

/** Every operation may answer errorReply (4XX, 5XX) unless it documents that status itself. */
function shareErrorReplies(doc: Document): Document {
  for (const operations of Object.values(doc.paths ?? {})) {
    for (const operation of Object.values(operations)) operation.responses = { '4XX': ERROR_RESPONSE, '5XX': ERROR_RESPONSE, ...operation.responses };
  }
  const schema = z.toJSONSchema(errorReply, { target: 'openapi-3.0', io: 'output' });
  const error = { description: errorReply.description, content: { 'application/json': { schema } } };
  return { ...doc, components: { ...doc.components, responses: { Error: error } } };
}

const isZod = (schema: unknown): schema is z.ZodType => schema instanceof z.ZodType;

const description = `MailPilot sends email campaigns for many users, each through their own SMTP accounts.

Send \`Authorization: Bearer <key>\`: a user's key sees only that user's resources; the admin key creates users and reads system-wide stats.
Every collection answers \`{items, next}\`: pass \`next\` as \`?after=\` for the following page (null on the last one); \`?limit=\` is 1 to 1000 (default 100).
Request bodies are limited to ${BODY_LIMIT_BYTES} bytes (413 beyond; CSV imports stream and have no limit) and to ${MAX_JSON_DEPTH} levels of JSON nesting.`;

/**
 * The OpenAPI 3 document, generated from the zod schemas that validate each route's requests and
 * describe its replies (`schema.response`), so the document cannot drift from what the server accepts;
 * test/api.replies.test.ts checks real replies against it. Every route also documents `4XX` and `5XX`
 * as errorReply, once in components. Registered before the routes: it collects them as they are added.
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
      // Zod reply schemas go through the zod converter; text replies as declared.
      const declared: Record<string, unknown> = { ...(input.schema?.response as object | undefined) };
      const zodReplies = Object.fromEntries(Object.entries(declared).filter(([, s]) => isZod(s)));
      const textReplies = Object.fromEntries(Object.entries(declared).filter(([, s]) => !isZod(s)));
      const converted = jsonSchemaTransform({ ...input, schema: { ...input.schema, response: zodReplies } }) as {
        schema: { response?: object };
        url: string;
      };
      const { schema, url } = converted;
      listNullInEnums(schema);
      const resource = /^\/api\/v1\/([^/]+)/.exec(url)?.[1];
      return {
        url,
        schema: {
          ...schema,
          tags: [resource ?? 'public'],
          ...(url.startsWith('/api/') && url !== OPENAPI_PATH ? {} : { security: [] }),
          response: { ...schema.response, ...textReplies },
        },
      };
    },
    transformObject: (input) => ('openapiObject' in input ? shareErrorReplies(input.openapiObject as Document) : input.swaggerObject),
  });
  app.get(OPENAPI_PATH, { schema: { response: { 200: documentReply } } }, async () => app.swagger());
}
