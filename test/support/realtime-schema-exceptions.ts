/**
 * The one place that lists where the Realtime API is known to differ from its own published
 * schema, and so where the embedded model (which reproduces the real service) may differ too.
 * Each entry is a field the real service sends as `null` although the schema types it as an
 * object or string. Before validating, the conformance check removes exactly these nulls (a null
 * only, at exactly this path, in exactly this event type); anything else must match the schema.
 */
export interface KnownNull {
  /** server event type */
  type: string;
  /** path of the field inside the event */
  path: readonly string[];
  /** why the real service is believed to send it */
  why: string;
}

export const KNOWN_NULLS: readonly KnownNull[] = [
  ...['session.created', 'session.updated'].flatMap((type) => [
    { type, path: ['session', 'audio', 'input', 'transcription'], why: 'the GA service reports transcription: null while input transcription is off' },
    { type, path: ['session', 'audio', 'input', 'noise_reduction'], why: 'the GA service reports noise_reduction: null while it is off' },
    { type, path: ['session', 'include'], why: 'the GA service reports include: null when no extra fields were asked for' },
  ]),
  { type: 'response.created', path: ['response', 'status_details'], why: 'an in-progress response has no status details yet: the service sends null' },
  { type: 'response.done', path: ['response', 'status_details'], why: 'a completed response has nothing to detail: the service sends status_details: null' },
  { type: 'response.created', path: ['response', 'usage'], why: 'usage is only known once the response is done: the service sends null' },
  ...['conversation.item.added', 'conversation.item.created', 'conversation.item.done', 'conversation.item.retrieved'].map((type) => ({
    type,
    path: ['item', 'content', '*', 'transcript'],
    why: "a user audio item's transcript is null until (and unless) transcription fills it in",
  })),
];

/** A copy of `event` without the known nulls of its type ('*' walks every array element). */
export function withoutKnownNulls(event: unknown): unknown {
  if (typeof event !== 'object' || event === null) return event;
  const type = (event as { type?: unknown }).type;
  const copy = structuredClone(event) as Record<string, unknown>;
  for (const known of KNOWN_NULLS) if (known.type === type) dropNull(copy, known.path);
  return copy;
}

function dropNull(node: unknown, path: readonly string[]): void {
  if (typeof node !== 'object' || node === null || path.length === 0) return;
  const [head, ...rest] = path;
  if (head === '*') {
    if (Array.isArray(node)) for (const element of node) dropNull(element, rest);
    return;
  }
  const record = node as Record<string, unknown>;
  if (rest.length === 0) {
    if (record[head!] === null) delete record[head!];
    return;
  }
  dropNull(record[head!], rest);
}
