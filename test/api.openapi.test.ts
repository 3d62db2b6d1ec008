import SwaggerParser from '@apidevtools/swagger-parser';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from './helpers/db.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';

/** Every endpoint of API.md, and the ones this implementation adds, as OpenAPI paths. */
const CONTRACT: Record<string, string[]> = {
  '/healthz': ['get'],
  '/readyz': ['get'],
  '/api/v1/users': ['post'],
  '/api/v1/me': ['get', 'patch'],
  '/api/v1/me/keys': ['get', 'post'],
  '/api/v1/me/keys/{id}': ['delete'],
  '/api/v1/smtp-servers': ['get', 'post'],
  '/api/v1/smtp-servers/{id}': ['get', 'patch', 'delete'],
  '/api/v1/smtp-accounts': ['get', 'post'],
  '/api/v1/smtp-accounts/{id}': ['get', 'patch', 'delete'],
  '/api/v1/lists': ['get', 'post'],
  '/api/v1/lists/{id}': ['get'],
  '/api/v1/lists/{id}/contacts': ['post'],
  '/api/v1/campaigns': ['get', 'post'],
  '/api/v1/campaigns/{id}': ['get'],
  '/api/v1/campaigns/{id}/start': ['post'],
  '/api/v1/campaigns/{id}/pause': ['post'],
  '/api/v1/campaigns/{id}/resume': ['post'],
  '/api/v1/campaigns/{id}/stop': ['post'],
  '/api/v1/campaigns/{id}/messages': ['get'],
  '/api/v1/campaigns/{id}/events': ['get'],
  '/api/v1/suppressions': ['get', 'post', 'delete'],
  '/api/v1/stats': ['get'],
  '/api/v1/openapi.json': ['get'],
  '/u/{token}': ['get', 'post'],
};

/** The routes the server really has, from Fastify's own route tree (HEAD twins left out). */
function registeredRoutes(t: TestMailPilot): Set<string> {
  const tree = t.mp.app!.printRoutes({ commonPrefix: false });
  const routes = new Set<string>();
  const stack: { depth: number; path: string }[] = [];
  for (const line of tree.split('\n')) {
    const m = /^([│ ]*)(?:├── |└── )(\S*)(?: \(([^)]*)\))?/.exec(line);
    if (!m) continue;
    const depth = m[1]!.length;
    while (stack.length > 0 && stack.at(-1)!.depth >= depth) stack.pop();
    const path = (stack.at(-1)?.path ?? '') + m[2];
    stack.push({ depth, path });
    for (const method of (m[3] ?? '').split(', ').filter((x) => x && x !== 'HEAD')) {
      routes.add(`${method.toLowerCase()} ${path.replace(/:(\w+)/g, '{$1}')}`);
    }
  }
  return routes;
}

describe.each(databaseKinds)('OpenAPI document (%s)', (kind) => {
  let t: TestMailPilot;
  beforeAll(async () => {
    t = await startTestMailPilot(kind, { engine: false });
  });
  afterAll(() => t.close());

  it('is served without a key, validates as OpenAPI 3, and lists every route the server has', async () => {
    const res = await t.api('GET', '/api/v1/openapi.json');
    expect(res.status).toBe(200);
    const doc = res.body;
    expect(doc.openapi).toMatch(/^3\./);
    await SwaggerParser.validate(structuredClone(doc));

    const documented = new Set<string>();
    for (const [path, ops] of Object.entries(doc.paths as Record<string, Record<string, unknown>>)) {
      for (const method of Object.keys(ops)) documented.add(`${method} ${path}`);
    }
    for (const [path, methods] of Object.entries(CONTRACT)) {
      for (const method of methods) expect(documented, `${method} ${path}`).toContain(`${method} ${path}`);
    }
    const registered = registeredRoutes(t);
    expect(registered.size).toBeGreaterThanOrEqual(Object.values(CONTRACT).flat().length);
    expect([...registered].filter((r) => !documented.has(r))).toEqual([]);
  });

  it('describes each request from the schema that validates it', async () => {
    const doc = (await t.api('GET', '/api/v1/openapi.json')).body;
    const createServer = doc.paths['/api/v1/smtp-servers'].post;
    const body = createServer.requestBody.content['application/json'].schema;
    expect(body.required).toEqual(expect.arrayContaining(['name', 'host', 'port', 'security']));
    expect(body.properties.port).toMatchObject({ type: 'integer', minimum: 1, maximum: 65535 });
    expect(body.properties.security.enum).toEqual(['none', 'starttls', 'tls']);
    expect(body.additionalProperties).toBe(false);
    const listQuery = doc.paths['/api/v1/campaigns/{id}/messages'].get.parameters.map((p: any) => `${p.in}:${p.name}`);
    expect(listQuery).toEqual(expect.arrayContaining(['path:id', 'query:limit', 'query:after', 'query:status']));
    expect(doc.components.securitySchemes.apiKey).toMatchObject({ type: 'http', scheme: 'bearer' });
    expect(doc.paths['/healthz'].get.security).toEqual([]);
  });
});
