import { defineConfig } from 'vitest/config';

/**
 * The suite StrykerJS runs against each mutant (npm run mutate): the unit tests, which cover the
 * pure core on the fake clock in milliseconds. The real-socket integration tests play audio in
 * real time and would make a mutation run take hours.
 */
export default defineConfig({
  test: {
    include: ['test/unit/**/*.test.ts'],
    // The property test's 2000 runs are for CI; a mutant only needs to be seen failing.
    testTimeout: 60_000,
    reporters: ['default'],
  },
});
