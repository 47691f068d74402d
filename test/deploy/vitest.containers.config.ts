import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// `npm run test:containers`: the container stack (test/deploy/compose-stack.test.ts), kept out
// of `npm test` because building the images and bringing the stack up takes many minutes.
// The file skips, saying so, under any other config.
export default defineConfig({
  root: fileURLToPath(new URL('../..', import.meta.url)),
  test: {
    include: ['test/deploy/compose-stack.test.ts'],
    env: { UGCFS_CONTAINER_TESTS: '1' },
    testTimeout: 20 * 60_000,
    hookTimeout: 75 * 60_000,
    pool: 'forks',
    maxWorkers: 1,
    fileParallelism: false,
    reporters: ['default'],
  },
});
