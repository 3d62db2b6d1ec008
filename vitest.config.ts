import { defineConfig } from 'vitest/config';

const MULTI_PROCESS = ['test/engine.processes.test.ts', 'test/engine.crash.test.ts'];

export default defineConfig({
  test: {
    // Room for a loaded 2-core machine; a healthy run finishes each test far sooner.
    testTimeout: 180_000,
    hookTimeout: 180_000,
    // Integration tests bind ports and run engines; two at a time suits a 2-core machine.
    maxWorkers: 2,
    minWorkers: 1,
    projects: [
      { extends: true, test: { name: 'integration', include: ['test/**/*.test.ts'], exclude: MULTI_PROCESS, sequence: { groupOrder: 0 } } },
      // Spawn MailPilot processes under load: they run after the others, so they starve none of them.
      { extends: true, test: { name: 'processes', include: MULTI_PROCESS, sequence: { groupOrder: 1 } } },
    ],
  },
});
