/**
 * The one JSON Schema validator of the service. Schemas are written with TypeBox, so each message
 * or file has one schema and its TypeScript type is derived from it (`Static<typeof Schema>`);
 * ajv compiles each schema once into a plain function. Failures come back as problems that name
 * the field in plain words ("media.payload must be a string, got 5"), never as ajv's raw errors.
 */
import { Ajv } from 'ajv';
import type { ErrorObject } from 'ajv';
import { Type } from 'typebox';
import type { Static, TSchema, TUnsafe } from 'typebox';

/** One thing wrong with a value, named by the dotted path of its field ('' for the value itself). */
export interface Problem {
  /** e.g. `media.payload`, `tools[2].name`; '' when the value as a whole is wrong */
  field: string;
  /** the JSON Schema keyword that failed (`required`, `type`, `pattern`, …) */
  keyword: string;
  /** a sentence starting with the field: what was expected, and what came instead */
  message: string;
}

export type Checked<T> = { ok: true; value: T } | { ok: false; problems: Problem[] };

export interface Validator<S extends TSchema> {
  readonly schema: S;
  /**
   * Type guard: no allocation when the value is valid (the hot path). Schema `default`s are
   * written into the value as it is checked, so a passing value carries them.
   */
  is(value: unknown): value is Static<S>;
  /** The problems of the latest `is` that returned false (validators are synchronous). */
  problems(): Problem[];
  check(value: unknown): Checked<Static<S>>;
}

/**
 * Annotation keyword: what a value must be, in plain words ("an E.164 phone number, e.g.
 * +15551234567"). Replaces the keyword-by-keyword wording of a failure of that value itself.
 */
export const EXPECTED = 'expected';
/**
 * Annotation keyword: the whole complaint after the field name ("must be a non-empty string"),
 * for messages that must not quote the value. Wins over `expected`.
 */
export const PROBLEM = 'problem';

const ajv = new Ajv({
  // Every problem at once: a config file or a request body is fixed in one round. Valid values
  // cost the same either way, so the hot path does not pay for it.
  allErrors: true,
  // `type: ["object", "null"]`: a field where null means absent, without a union that would
  // hide the field's own problems behind "one of the allowed shapes".
  allowUnionTypes: true,
  // Optional fields take their schema `default`, so parsers do not repeat them.
  useDefaults: true,
  // Errors carry the offending value, for "got …" in the message; only failures pay for it.
  verbose: true,
  // Patterns here are ASCII; without the `u` flag V8 matches them faster.
  unicodeRegExp: false,
});
ajv.addKeyword({ keyword: EXPECTED, schemaType: 'string' });
ajv.addKeyword({ keyword: PROBLEM, schemaType: 'string' });

export interface CompileOptions {
  /** what the value as a whole is called in messages ("body must be …"); default "the value" */
  root?: string;
}

/** Compile `schema` (cached by ajv: compiling the same schema twice is cheap). */
export function compile<S extends TSchema>(schema: S, options: CompileOptions = {}): Validator<S> {
  const validate = ajv.compile<Static<S>>(schema);
  const root = options.root ?? 'the value';
  const problems = (): Problem[] => describeErrors(validate.errors ?? [], root);
  return {
    schema,
    is: (value: unknown): value is Static<S> => validate(value),
    problems,
    check: (value) => (validate(value) ? { ok: true, value } : { ok: false, problems: problems() }),
  };
}

/**
 * An object schema that also takes null ("off", "none"). One `type: ["object", "null"]` rather
 * than a union: a union's failure reads "must be one of the allowed shapes", hiding which field
 * of the object is wrong. `options`: annotations (`expected`) for a value that is neither.
 */
export function Nullable<T extends TSchema>(schema: T, options: Record<string, unknown> = {}): TUnsafe<Static<T> | null> {
  return Type.Unsafe<Static<T> | null>({ ...schema, ...options, type: ['object', 'null'] });
}

/** The messages of `problems`, joined for one log line or one error string. */
export function problemText(problems: readonly Problem[]): string {
  return problems.map((p) => p.message).join('; ');
}

// ---------------------------------------------------------------- wording

/** ajv's errors as problems: one per failing field, in plain words. */
export function describeErrors(errors: readonly ErrorObject[], root = 'the value'): Problem[] {
  const unions = errors.filter((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf').map((e) => `${e.schemaPath}/`);
  const out: Problem[] = [];
  const seen = new Set<string>();
  for (const e of errors) {
    // The branches of a union each fail in their own way; the union's own error says it once.
    if (unions.some((u) => e.schemaPath.startsWith(u))) continue;
    // propertyNames reports the bad key twice: as the inner failure and as itself; an if/then
    // as "must match then", after the then-branch's own errors, which say what is wrong.
    if (e.keyword === 'propertyNames' || e.keyword === 'if') continue;
    const problem = describeError(e, root);
    const key = `${problem.field}\u0000${problem.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(problem);
  }
  return out;
}

function describeError(e: ErrorObject, root: string): Problem {
  const at = fieldOf(e.instancePath);
  const params = e.params as Record<string, unknown>;
  const got = `got ${describeValue(e.data)}`;
  const annotations = e.parentSchema as Record<string, unknown> | undefined;
  const expected = annotations?.[EXPECTED];
  const problem = annotations?.[PROBLEM];
  // ajv marks the failures of a key (propertyNames) with the key they are about.
  const propertyName = e.propertyName ?? null;
  if (e.keyword === 'required') {
    const field = join(at, String(params['missingProperty']));
    return { field, keyword: e.keyword, message: `${field} is missing` };
  }
  if (e.keyword === 'additionalProperties') {
    const field = join(at, String(params['additionalProperty']));
    const known = Object.keys((e.parentSchema as { properties?: object } | undefined)?.properties ?? {});
    return { field, keyword: e.keyword, message: `${field} is not a known field${known.length > 0 ? ` (known: ${known.join(', ')})` : ''}` };
  }
  if (propertyName !== null) {
    // A key of an object failed the object's propertyNames: the key itself is the field.
    const field = join(at, propertyName);
    const what = typeof expected === 'string' ? expected : (keywordWording(e) ?? 'a valid key');
    return { field, keyword: e.keyword, message: `${field} is not a valid key: it must be ${what}` };
  }
  const name = at === '' ? root : at;
  if (typeof problem === 'string') return { field: at, keyword: e.keyword, message: `${name} ${problem}` };
  if (typeof expected === 'string') return { field: at, keyword: e.keyword, message: `${name} must be ${expected}, ${got}` };
  const wording = keywordWording(e);
  return { field: at, keyword: e.keyword, message: wording === null ? `${name} is not valid (${e.message ?? e.keyword}), ${got}` : `${name} must be ${wording}, ${got}` };
}

/** What the failed keyword asked for, to follow "must be". */
function keywordWording(e: ErrorObject): string | null {
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'type':
      return String(p['type']).split(',').map(article).join(' or ');
    case 'const':
      return JSON.stringify(p['allowedValue']);
    case 'enum':
      return `one of ${(p['allowedValues'] as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
    case 'pattern':
      return `text matching /${String(p['pattern'])}/`;
    case 'format':
      return `a valid ${String(p['format'])}`;
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return `${String(p['comparison'])} ${String(p['limit'])}`;
    case 'minLength':
      return `at least ${String(p['limit'])} characters`;
    case 'maxLength':
      return `at most ${String(p['limit'])} characters`;
    case 'minItems':
      return `a list of at least ${String(p['limit'])} items`;
    case 'maxItems':
      return `a list of at most ${String(p['limit'])} items`;
    case 'minProperties':
      return `an object of at least ${String(p['limit'])} keys`;
    case 'maxProperties':
      return `an object of at most ${String(p['limit'])} keys`;
    case 'multipleOf':
      return `a multiple of ${String(p['multipleOf'])}`;
    case 'anyOf':
    case 'oneOf':
      return 'one of the allowed shapes';
    case 'not':
      return 'something else';
    default:
      return null;
  }
}

function article(type: string): string {
  switch (type) {
    case 'object':
      return 'an object';
    case 'array':
      return 'a list';
    case 'integer':
      return 'an integer';
    case 'null':
      return 'null';
    default:
      return `a ${type}`;
  }
}

/** A JSON pointer (`/tools/0/name`) as the field a person reads (`tools[0].name`). */
export function fieldOf(instancePath: string): string {
  if (instancePath === '') return '';
  let out = '';
  for (const raw of instancePath.slice(1).split('/')) {
    const part = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    out = /^\d+$/.test(part) ? `${out}[${part}]` : join(out, part);
  }
  return out;
}

function join(parent: string, key: string): string {
  return parent === '' ? key : `${parent}.${key}`;
}

/** A value as it appears in a message: JSON, cut short; `nothing` for undefined. */
export function describeValue(v: unknown): string {
  if (v === undefined) return 'nothing';
  const json = JSON.stringify(v);
  return json === undefined ? typeof v : json.length > 80 ? `${json.slice(0, 77)}...` : json;
}
