import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { HTTP_TIMEOUT_VARIABLES, loadConfig, QUOTA_VARIABLES } from '../src/config.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const UNITS = ['mailpilot.service', 'mailpilot-worker@.service'];
const HARDENING = ['DynamicUser=yes', 'NoNewPrivileges=yes', 'ProtectSystem=strict', 'ProtectHome=yes', 'PrivateTmp=yes', 'Restart=on-failure', 'CapabilityBoundingSet='];

/** Every environment variable the source reads: `env.NAME` and the tables of limits in config.ts. */
function variablesRead(): Set<string> {
  const names = new Set<string>();
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir)) {
      const path = join(dir, entry);
      if (statSync(path).isDirectory()) walk(path);
      else if (path.endsWith('.ts')) for (const m of readFileSync(path, 'utf8').matchAll(/\benv\.([A-Z][A-Z0-9_]+)/g)) names.add(m[1]!);
    }
  };
  walk(join(ROOT, 'src'));
  for (const v of [...Object.values(QUOTA_VARIABLES), ...Object.values(HTTP_TIMEOUT_VARIABLES)]) names.add(v.variable);
  return names;
}

describe('the systemd units and the example environment file', () => {
  const example = readFileSync(join(ROOT, 'ops/mailpilot.env.example'), 'utf8');

  it('lists every variable MailPilot reads, and its settings load as they are', () => {
    const listed = new Set([...example.matchAll(/^#?([A-Z][A-Z0-9_]+)=/gm)].map((m) => m[1]!));
    const read = variablesRead();
    expect(read.size).toBeGreaterThan(25);
    expect([...read].filter((v) => !listed.has(v))).toEqual([]);
    expect([...listed].filter((v) => !read.has(v))).toEqual([]);
    const set = Object.fromEntries([...example.matchAll(/^([A-Z][A-Z0-9_]+)=(.*)$/gm)].map((m) => [m[1]!, m[2]!]));
    const config = loadConfig(set);
    expect(config).toMatchObject({ port: 8080, host: '127.0.0.1', publicUrl: 'https://mail.example.com', logLevel: 'info', databaseUrl: undefined });
  });

  it.each(UNITS)('%s is hardened, restarts on failure, and reads the environment file', (unit) => {
    const text = readFileSync(join(ROOT, 'ops', unit), 'utf8');
    for (const line of [...HARDENING, 'EnvironmentFile=/etc/mailpilot/mailpilot.env', 'KillSignal=SIGTERM']) {
      expect(text.split('\n'), line).toContain(line);
    }
    expect(text).toMatch(/^ExecStart=\/usr\/bin\/node \/opt\/mailpilot\/bin\/mailpilot\.js (serve|worker)$/m);
  });

  it.skipIf(!existsSync('/usr/bin/systemd-analyze'))('passes systemd-analyze verify without a warning (when systemd is installed)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mailpilot-units-'));
    try {
      for (const unit of UNITS) {
        // A template is verified as one of its instances.
        const name = unit.replace('@.', '@9464.');
        copyFileSync(join(ROOT, 'ops', unit), join(dir, name));
        const r = spawnSync('systemd-analyze', ['verify', join(dir, name)], { encoding: 'utf8' });
        expect(`${r.stdout}${r.stderr}`.trim(), unit).toBe('');
        expect(r.status).toBe(0);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
