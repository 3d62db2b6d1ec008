import { createHash } from 'node:crypto';
import { get } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from './helpers/db.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';

describe.each(databaseKinds)('the dashboard is served by mailpilot serve, offline and locked down (%s)', (kind) => {
  let t: TestMailPilot;
  beforeAll(async () => {
    t = await startTestMailPilot(kind, { engine: false });
  });
  afterAll(async () => {
    await t.close();
  });

  it('serves the page at / without a key, allowing only its own scripts', async () => {
    const res = await fetch(`${t.url}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const page = await res.text();
    expect(page).toContain('<title>MailPilot</title>');
    // Nothing is fetched from another origin.
    expect(page).not.toMatch(/(src|href)="(https?:)?\/\//);
    const importMap = /<script type="importmap">([\s\S]*?)<\/script>/.exec(page)![1]!;
    const hash = createHash('sha256').update(importMap).digest('base64');
    const csp = res.headers.get('content-security-policy')!;
    expect(csp).toContain(`script-src 'self' 'sha256-${hash}'`);
    expect(csp).toContain("connect-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
  });

  it('serves every module the import map and the page name, from this server', async () => {
    const page = await (await fetch(`${t.url}/`)).text();
    const importMap = JSON.parse(/<script type="importmap">([\s\S]*?)<\/script>/.exec(page)![1]!);
    const paths = [...Object.values(importMap.imports as Record<string, string>), '/app/main.js', '/app/styles.css', '/app/lib/eta.js', '/app/pages/campaigns.js'];
    for (const path of paths) {
      const res = await fetch(t.url + path);
      expect({ path, status: res.status }).toEqual({ path, status: 200 });
      expect(res.headers.get('content-type')).toMatch(path.endsWith('.css') ? /^text\/css/ : /^(text|application)\/javascript/);
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    }
  });

  it('serves nothing else from the source tree', async () => {
    // Sent as written (fetch would resolve the dot segments before sending).
    const statusOf = (path: string) =>
      new Promise<number>((resolve, reject) => {
        const { hostname, port } = new URL(t.url);
        get({ hostname, port, path }, (res) => {
          res.resume();
          resolve(res.statusCode!);
        }).on('error', reject);
      });
    for (const path of ['/app/lib/eta.d.ts', '/app/index.html', '/app/../api/app.ts', '/app/%2e%2e/cli/main.ts', '/vendor/zod.mjs', '/vendor/..%2f..%2fpackage.json']) {
      expect({ path, status: await statusOf(path) }).toEqual({ path, status: 404 });
    }
  });
});
