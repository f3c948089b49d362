/** A parsed JSON object, before any of its fields is trusted. */
export type JsonObject = Record<string, unknown>;

/**
 * A JSON object (not null, not an array). For the hand-written checks that must reproduce the
 * OpenAI Realtime API's exact error text (src/realtime/events.ts, the local model); every other
 * boundary checks its input against a schema (src/validation/validator.ts).
 */
export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
