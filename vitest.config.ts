import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 180_000,
    hookTimeout: 180_000,
    // Integration tests bind ports and run engines; two at a time suits a 2-core machine.
    maxWorkers: 2,
    minWorkers: 1,
  },
});
