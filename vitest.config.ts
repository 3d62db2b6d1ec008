import { defineConfig } from 'vitest/config';

const MULTI_PROCESS = 'test/engine.processes.test.ts';

export default defineConfig({
  test: {
    // Room for a loaded 2-core machine; a healthy run finishes each test far sooner.
    testTimeout: 180_000,
    hookTimeout: 180_000,
    // Integration tests bind ports and run engines; two at a time suits a 2-core machine.
    maxWorkers: 2,
    minWorkers: 1,
    projects: [
      { extends: true, test: { name: 'integration', include: ['test/**/*.test.ts'], exclude: [MULTI_PROCESS], sequence: { groupOrder: 0 } } },
      // Spawns several MailPilot processes under load: it runs after the others, so it starves none of them.
      { extends: true, test: { name: 'processes', include: [MULTI_PROCESS], sequence: { groupOrder: 1 } } },
    ],
  },
});
