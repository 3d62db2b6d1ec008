import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyReply } from 'fastify';
import { z } from 'zod';
import type { AppContext } from '../../context.ts';
import type { ZodApp } from '../app.ts';
import { textReply } from '../openapi.ts';

const WEB_ROOT = fileURLToPath(new URL('../../web/', import.meta.url));
const require = createRequire(import.meta.url);

/**
 * The browser modules the dashboard imports by bare name (see the import map in index.html),
 * served from node_modules: no CDN and no build step.
 */
const VENDOR: Record<string, () => string> = {
  'preact.mjs': () => require.resolve('preact'),
  'preact-hooks.mjs': () => require.resolve('preact/hooks'),
  // htm's require entry is CommonJS; its ES module sits next to it.
  'htm.mjs': () => join(dirname(require.resolve('htm')), 'htm.mjs'),
};

const CONTENT_TYPES: Record<string, string> = { '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8' };

/** The dashboard's own modules and styles, by path under src/web/ ("main.js", "pages/campaigns.js"). */
function readAssets(dir = WEB_ROOT, prefix = '', assets = new Map<string, { type: string; body: string }>()) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) readAssets(join(dir, entry.name), `${prefix}${entry.name}/`, assets);
    const type = CONTENT_TYPES[/\.[a-z]+$/.exec(entry.name)?.[0] ?? ''];
    if (!entry.isFile() || !type || entry.name.endsWith('.d.ts')) continue;
    assets.set(prefix + entry.name, { type, body: readFileSync(join(dir, entry.name), 'utf8') });
  }
  return assets;
}

/** sha256 of every inline script (only the import map), for the Content-Security-Policy. */
function inlineScriptHashes(page: string): string[] {
  return [...page.matchAll(/<script\b[^>]*>([\s\S]*?)<\/script>/g)]
    .filter((m) => m[1]!.trim() !== '')
    .map((m) => `'sha256-${createHash('sha256').update(m[1]!).digest('base64')}'`);
}

/**
 * The dashboard: a single page (src/web/index.html) at `/`, its ES modules and styles under
 * `/app/`, Preact and htm under `/vendor/`, all read once at start. It holds no data: every view
 * signs in with an API key and reads the JSON API, like any other client.
 */
export function dashboardRoutes(app: ZodApp, _ctx: AppContext): void {
  const page = readFileSync(`${WEB_ROOT}index.html`, 'utf8');
  const csp = [
    "default-src 'self'",
    `script-src 'self' ${inlineScriptHashes(page).join(' ')}`,
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ].join('; ');
  const vendor = new Map(Object.entries(VENDOR).map(([file, path]) => [file, readFileSync(path(), 'utf8')]));
  const assets = readAssets();
  const script = (reply: FastifyReply, type: string, body: string, cacheControl: string) =>
    reply.type(type).header('x-content-type-options', 'nosniff').header('cache-control', cacheControl).send(body);

  app.get('/', { schema: { description: 'The dashboard (HTML); it signs in with an API key and uses this API.', response: { 200: textReply('the page', 'text/html') } } }, async (_req, reply) =>
    reply
      .type('text/html; charset=utf-8')
      .header('content-security-policy', csp)
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      .header('cache-control', 'no-cache')
      .send(page),
  );

  const file = z.string().max(100);
  app.get(
    '/vendor/:file',
    {
      schema: {
        description: 'Preact and htm, as the dashboard imports them.',
        params: z.object({ file }).strict(),
        response: { 200: textReply('an ES module', 'text/javascript') },
      },
    },
    async (req, reply) => {
      const source = vendor.get(req.params.file);
      if (source === undefined) return reply.callNotFound();
      return script(reply, 'text/javascript; charset=utf-8', source, 'public, max-age=86400');
    },
  );

  // src/web has one level of folders (pages/, lib/): one route for its top files, one per folder.
  const asset = async (path: string, reply: FastifyReply) => {
    const found = assets.get(path);
    if (!found) return reply.callNotFound();
    return script(reply, found.type, found.body, 'no-cache');
  };
  const schema = {
    description: "The dashboard's modules and styles.",
    params: z.object({ file }).strict(),
    response: { 200: textReply('an ES module or a style sheet', 'text/javascript', 'text/css') },
  };
  app.get('/app/:file', { schema }, async (req, reply) => asset(req.params.file, reply));
  for (const dir of new Set([...assets.keys()].filter((p) => p.includes('/')).map((p) => p.split('/')[0]!))) {
    app.get(`/app/${dir}/:file`, { schema }, async (req, reply) => asset(`${dir}/${req.params.file}`, reply));
  }
}
