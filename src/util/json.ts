/** A parsed JSON object, before any of its fields is trusted. */
export type JsonObject = Record<string, unknown>;

/** A JSON object (not null, not an array): the first check of every message parsed at a boundary. */
export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
