import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// Installing (and waiting for another test file's install) can take this long on a slow mirror.
const INSTALL_TIMEOUT_MS = 20 * 60_000;
// Test files run in parallel processes: two apt-get runs at once fail on dpkg's lock, so each
// install holds this file lock and the second one, once it has it, finds the program installed.
const LOCK_FILE = join(tmpdir(), 'mailpilot-test-apt.lock');

/**
 * Returns `program`, installing Debian's `packages` (with `apt-get`, as root) when it is missing.
 * Undefined, with a notice on the console naming the `skipped` tests, only when it cannot be
 * installed (no apt-get, no root, no network).
 */
export function ensureDebianProgram(p: { program: string; packages: string[]; noRecommends?: boolean; skipped: string }): string | undefined {
  if (existsSync(p.program)) return p.program;
  const install = `apt-get install -y -qq ${p.noRecommends ? '--no-install-recommends ' : ''}"$@"`;
  try {
    execFileSync('flock', [LOCK_FILE, 'sh', '-c', `test -e "$0" || { apt-get update -qq && ${install}; }`, p.program, ...p.packages], {
      stdio: 'inherit',
      timeout: INSTALL_TIMEOUT_MS,
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
  } catch (err) {
    console.warn(`NOTICE: ${p.program} is not installed and "apt-get install ${p.packages.join(' ')}" failed (${(err as Error).message}).`);
  }
  if (existsSync(p.program)) return p.program;
  console.warn(`NOTICE: ${p.skipped} are SKIPPED because ${p.packages.join(' ')} could not be installed.`);
  return undefined;
}
