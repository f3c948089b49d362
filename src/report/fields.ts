/**
 * Reading fields of messages as recorded: untyped JSON from both peers (a capture, or what the
 * bridge hands its recorders), where any field may be missing or of the wrong type. Each reader
 * answers null (or an empty object) rather than throwing, so one odd message never stops an
 * account of the call.
 */

export type Obj = Record<string, unknown>;

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function str(o: Obj, key: string): string | null {
  const v = o[key];
  return typeof v === 'string' ? v : null;
}

export function num(o: Obj, key: string): number | null {
  const v = o[key];
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

/** The object under `key`, or an empty one: chains like obj(obj(m, 'response'), 'metadata') never throw. */
export function obj(o: Obj, key: string): Obj {
  const v = o[key];
  return isObj(v) ? v : {};
}

/** Times in reports and summaries: a tenth of a millisecond is finer than anything they measure. */
export const round1 = (ms: number): number => Math.round(ms * 10) / 10;
