import { ensureDebianProgram } from './debianPackage.ts';

/** Debian's `prometheus` package ships promtool. */
export const PROMTOOL_PATH = '/usr/bin/promtool';

/**
 * Returns promtool, installing Debian's `prometheus` package when it is missing (as ensureChromium
 * does). Undefined, with a notice on the console, only when it cannot be installed.
 */
export function ensurePromtool(): string | undefined {
  return ensureDebianProgram({ program: PROMTOOL_PATH, packages: ['prometheus'], noRecommends: true, skipped: 'the promtool checks of ops/prometheus' });
}
