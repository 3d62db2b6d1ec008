import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/** Debian's `prometheus` package ships promtool. */
export const PROMTOOL_PATH = '/usr/bin/promtool';
const INSTALL_TIMEOUT_MS = 20 * 60_000;

function aptGet(args: string[]): void {
  execFileSync('apt-get', args, { stdio: 'inherit', timeout: INSTALL_TIMEOUT_MS, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
}

/**
 * Returns promtool, installing Debian's `prometheus` package when it is missing (as ensureChromium
 * does). Undefined, with a notice on the console, only when it cannot be installed.
 */
export function ensurePromtool(): string | undefined {
  if (existsSync(PROMTOOL_PATH)) return PROMTOOL_PATH;
  try {
    aptGet(['update', '-qq']);
    aptGet(['install', '-y', '-qq', '--no-install-recommends', 'prometheus']);
  } catch (err) {
    console.warn(`NOTICE: promtool is not installed and "apt-get install prometheus" failed (${(err as Error).message}).`);
  }
  if (existsSync(PROMTOOL_PATH)) return PROMTOOL_PATH;
  console.warn('NOTICE: the promtool checks of ops/prometheus are SKIPPED because promtool could not be installed.');
  return undefined;
}
