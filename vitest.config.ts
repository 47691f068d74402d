import { defineConfig } from 'vitest/config';

// Tests start real processes; two cores run at most two test files at once.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 60_000,
    pool: 'forks',
    maxWorkers: 2,
    // A worker runs one file after another without a fresh process and module graph for each:
    // on these 2 cores that start cost about 0.6-0.9 s of CPU per file (54 in-process files:
    // 170 -> 139 s of CPU; 8 that start clusters: 130 -> 122 s). Test files share no state
    // through modules (no vi.mock, no process.env writes, fake timers restored in afterEach).
    isolate: false,
    fileParallelism: true,
    reporters: ['default'],
  },
});
