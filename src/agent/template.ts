/**
 * Caller context in the agent's words: `{{from}}`, `{{to}}`, `{{callSid}}`, `{{direction}}`,
 * `{{now}}` and `{{context.<name>}}` (a custom `<Stream>` parameter) in `instructions` and the
 * greeting. Pure: no clock, no I/O.
 *
 * The values are untrusted. A caller chooses their caller ID (and on SIP, any From), and the
 * custom parameters come from whoever wrote the TwiML. So a value is text and nothing more: one
 * pass (a value holding `{{…}}` is never expanded), no control characters or line breaks (it
 * cannot start a new paragraph of instructions), no double quotes (it cannot close the quoted
 * text of a fixed greeting), bounded length.
 */

/** The placeholders every call fills. */
export const BUILTIN_PLACEHOLDERS = ['from', 'to', 'callSid', 'direction', 'now'] as const;
export type BuiltinPlaceholder = (typeof BUILTIN_PLACEHOLDERS)[number];

/** `{{context.plan}}`: the custom `<Stream>` parameter `plan`. */
export const CONTEXT_PREFIX = 'context.';

/** Names a custom parameter may have to be reachable as `{{context.<name>}}`. */
export const CONTEXT_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * Longest value inserted, in characters. Phone numbers and sids are far shorter; a custom value
 * longer than this is someone writing instructions through it.
 */
export const MAX_TEMPLATE_VALUE_CHARS = 128;

/** What a built-in placeholder becomes when the call did not say (a stream without `from`, say). */
export const UNKNOWN_VALUE = 'unknown';

/** `{{ name }}`, spaces inside the braces allowed. */
const PLACEHOLDER = /\{\{\s*([^{}\s]+)\s*\}\}/g;

/**
 * Characters a value loses: C0/C1 controls and DEL, line and paragraph separators, and the
 * bidirectional overrides (text that reads differently from what it is).
 */
const STRIPPED = /[\p{Cc}\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]/gu;

/** The facts of one call, as the placeholders see them (values not yet cleaned). */
export interface CallContext {
  callSid: string;
  from: string | null;
  to: string | null;
  direction: string | null;
  /** ISO 8601, UTC, at the call's start */
  now: string;
  /** the custom `<Stream>` parameters, by name */
  custom: Readonly<Record<string, string>>;
}

export type PlaceholderKind = { kind: 'builtin'; name: BuiltinPlaceholder } | { kind: 'context'; name: string } | { kind: 'unknown' };

function isBuiltin(name: string): name is BuiltinPlaceholder {
  return (BUILTIN_PLACEHOLDERS as readonly string[]).includes(name);
}

export function classifyPlaceholder(name: string): PlaceholderKind {
  if (isBuiltin(name)) return { kind: 'builtin', name };
  if (name.startsWith(CONTEXT_PREFIX)) {
    const param = name.slice(CONTEXT_PREFIX.length);
    if (CONTEXT_NAME.test(param)) return { kind: 'context', name: param };
  }
  return { kind: 'unknown' };
}

/** Every placeholder name in `text`, in order (repeats included). */
export function placeholdersIn(text: string): string[] {
  return Array.from(text.matchAll(PLACEHOLDER), (m) => m[1] ?? '');
}

/**
 * The placeholders of `text` no call could ever fill (a typo such as `{{fro}}`): what start-up
 * validation reports. `{{context.x}}` is always allowed: which parameters a call brings is only
 * known on the call.
 */
export function unknownPlaceholders(text: string): string[] {
  return [...new Set(placeholdersIn(text).filter((name) => classifyPlaceholder(name).kind === 'unknown'))];
}

/** A value as it may stand in the agent's text: see the module comment. */
export function templateValue(raw: string): string {
  const clean = raw.replace(STRIPPED, ' ').replace(/"/g, "'").replace(/\s+/g, ' ').trim();
  const chars = Array.from(clean);
  return chars.length <= MAX_TEMPLATE_VALUE_CHARS ? clean : chars.slice(0, MAX_TEMPLATE_VALUE_CHARS).join('');
}

/** The values of a call, cleaned, by placeholder name (`from`, …, `context.plan`). */
export function templateValues(context: CallContext): ReadonlyMap<string, string> {
  const values = new Map<string, string>();
  const builtins: Record<BuiltinPlaceholder, string | null> = {
    from: context.from,
    to: context.to,
    callSid: context.callSid,
    direction: context.direction,
    now: context.now,
  };
  for (const name of BUILTIN_PLACEHOLDERS) {
    const raw = builtins[name];
    const value = raw === null ? '' : templateValue(raw);
    values.set(name, value === '' ? UNKNOWN_VALUE : value);
  }
  for (const [name, raw] of Object.entries(context.custom)) {
    if (CONTEXT_NAME.test(name)) values.set(`${CONTEXT_PREFIX}${name}`, templateValue(raw));
  }
  return values;
}

export interface Filled {
  text: string;
  /** placeholders left as they were: unknown names, or context parameters the call did not bring */
  unfilled: string[];
}

/**
 * `text` with every placeholder the call has a value for replaced, in one pass. The rest stay
 * as written (a call is never failed over a placeholder) and are reported.
 */
export function fillTemplate(text: string, values: ReadonlyMap<string, string>): Filled {
  const unfilled = new Set<string>();
  const filled = text.replace(PLACEHOLDER, (whole: string, name: string) => {
    const value = values.get(name);
    if (value !== undefined) return value;
    unfilled.add(name);
    return whole;
  });
  return { text: filled, unfilled: [...unfilled] };
}
