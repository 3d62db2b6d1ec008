#!/usr/bin/env -S node --max-semi-space-size=4 --max-old-space-size=128
// The heap flags keep a server's memory near what it actually holds (~30–60 MB live) instead of
// letting garbage grow the heap to 200+ MB; `node bin/mailpilot.js` runs without them. The young
// generation is two semi-spaces, resident once used: 4 MB each instead of 8 took 12 MB off a
// 1,000-account server's peak with no measurable loss of throughput (README, Capacity).
//
// Runs the JavaScript that `npm install` compiled into dist/ (no TypeScript loader thread: ~40 MB
// less per process). When dist/ is missing or older than a source file (a checkout being worked
// on), runs the TypeScript sources through tsx instead, so what runs is always what is in src/.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const compiledMain = `${root}dist/cli/main.js`;

function newestChange(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = `${dir}/${entry.name}`;
    newest = Math.max(newest, entry.isDirectory() ? newestChange(path) : statSync(path).mtimeMs);
  }
  return newest;
}

if (existsSync(compiledMain) && statSync(compiledMain).mtimeMs >= newestChange(`${root}src`)) {
  await import('../dist/cli/main.js');
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.ts');
}
