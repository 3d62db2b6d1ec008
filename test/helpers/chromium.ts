import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { ensureDebianProgram } from './debianPackage.ts';

/** Debian's Chromium, driven by playwright-core (which brings no browser of its own). */
export const CHROMIUM_PATH = '/usr/bin/chromium';

/**
 * Returns the Chromium executable, installing the Debian package when it is missing. Undefined,
 * with a notice on the console, only when it cannot be installed (no apt-get, no root, no network).
 */
export function ensureChromium(): string | undefined {
  return ensureDebianProgram({ program: CHROMIUM_PATH, packages: ['chromium'], skipped: 'the browser tests' });
}

/** Headless Chromium with a fresh profile of its own (removed on close) and nothing that phones home. */
export async function launchChromium(
  executablePath: string,
  viewport: { width: number; height: number },
): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  const profile = mkdtempSync(join(tmpdir(), 'mailpilot-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    viewport,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
