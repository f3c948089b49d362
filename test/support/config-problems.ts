/**
 * Config tests read what a rejected config says: the ConfigError's problems, one per offending key.
 */
import { readFileSync } from 'node:fs';
import { expect } from 'vitest';
import { ConfigError, DEFAULT_CONFIG_PATH } from '../../src/config.js';

/** The default config file as raw JSON, to patch. */
export function defaultConfigJson(): Record<string, unknown> {
  return JSON.parse(readFileSync(DEFAULT_CONFIG_PATH, 'utf8')) as Record<string, unknown>;
}

/** The problems `load` throws as a ConfigError (none: []); any other throw fails the test. */
export function configProblems(load: () => unknown): string[] {
  try {
    load();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  return [];
}
