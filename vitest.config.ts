import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Integration tests play audio in real time; two cores run two files at once.
    testTimeout: 60_000,
    hookTimeout: 30_000,
    reporters: ['default'],
  },
});
