import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import { z } from 'zod';
import type { AppContext } from '../../context.ts';
import type { ZodApp } from '../app.ts';

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

/** sha256 of every inline script (only the import map), for the Content-Security-Policy. */
function inlineScriptHashes(page: string): string[] {
  return [...page.matchAll(/<script\b[^>]*>([\s\S]*?)<\/script>/g)]
    .filter((m) => m[1]!.trim() !== '')
    .map((m) => `'sha256-${createHash('sha256').update(m[1]!).digest('base64')}'`);
}

/**
 * The dashboard: a single page (src/web/index.html) at `/`, its ES modules and styles under
 * `/app/`, Preact and htm under `/vendor/`. It holds no data: every view signs in with an API key
 * and reads the JSON API, like any other client.
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
  const vendor = new Map(
    Object.entries(VENDOR).map(([file, path]) => [file, readFileSync(path(), 'utf8')]),
  );

  app.get('/', async (_req, reply) =>
    reply
      .type('text/html; charset=utf-8')
      .header('content-security-policy', csp)
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      .header('cache-control', 'no-cache')
      .send(page),
  );

  app.get('/vendor/:file', { schema: { params: z.object({ file: z.string() }).strict() } }, async (req, reply) => {
    const source = vendor.get(req.params.file);
    if (source === undefined) return reply.callNotFound();
    return reply
      .type('text/javascript; charset=utf-8')
      .header('x-content-type-options', 'nosniff')
      .header('cache-control', 'public, max-age=86400')
      .send(source);
  });

  app.register(fastifyStatic, {
    root: WEB_ROOT,
    prefix: '/app/',
    wildcard: false,
    globIgnore: ['**/*.d.ts', 'index.html'],
    cacheControl: false,
    setHeaders: (res) => {
      res.header('cache-control', 'no-cache');
      res.header('x-content-type-options', 'nosniff');
    },
  });
}
