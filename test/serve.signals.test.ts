import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { spawnCli } from './helpers/cli.ts';
import { freePort, newCluster } from './helpers/processes.ts';

const STARTS = 3;
// Every start is a new Node process creating its embedded database.
const TIMEOUT_MS = 180_000;

describe('mailpilot serve and a stop that comes while it starts', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'mailpilot-signals-'));
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it(
    'shuts down cleanly (exit 0) on SIGTERM sent the moment the API first answers, before the engine has started',
    async () => {
      const cluster = newCluster('unused');
      const env = { MAILPILOT_DATA_DIR: dataDir, MAILPILOT_ADMIN_KEY: cluster.adminKey, MAILPILOT_SECRET_KEY: cluster.secretKey, DATABASE_URL: '' };
      const exits: { code: number | null; signal: NodeJS.Signals | null }[] = [];
      for (let i = 0; i < STARTS; i++) {
        const port = await freePort();
        const child = spawnCli(['serve'], { ...env, PORT: String(port), HOST: '127.0.0.1' });
        let output = '';
        child.stdout!.on('data', (d: Buffer) => (output += d));
        child.stderr!.on('data', (d: Buffer) => (output += d));
        const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
          child.once('exit', (code, signal) => resolve({ code, signal })),
        );
        // The API listens before the engine and the mailbox readers start: a service manager's stop can come then.
        while (!(await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false))) {
          if (child.exitCode !== null) throw new Error(`mailpilot serve ended before it answered:\n${output}`);
          await new Promise((r) => setTimeout(r, 5));
        }
        child.kill('SIGTERM');
        exits.push(await exited);
      }
      expect(exits).toEqual(Array.from({ length: STARTS }, () => ({ code: 0, signal: null })));
    },
    TIMEOUT_MS,
  );
});
