/**
 * OpenAI's own schemas of every Realtime event (test/fixtures/openai/realtime-schemas.json, copied
 * from ../shared: components.schemas of OpenAI's OpenAPI document reachable from
 * RealtimeClientEvent and RealtimeServerEvent), compiled with ajv to check what the bridge sends
 * and what the embedded model emits.
 *
 * OpenAPI 3.0 marks optional nulls with `nullable: true`, which JSON Schema does not know: each such
 * schema becomes `anyOf: [schema, {type: null}]` before compiling. `discriminator` is OpenAPI's too
 * and only an optimisation hint, so ajv runs non-strict (it ignores unknown keywords).
 */
import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import type { ValidateFunction } from 'ajv';

const SCHEMA_FILE = new URL('../fixtures/openai/realtime-schemas.json', import.meta.url);

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function isRecord(value: Json): value is { [key: string]: Json } {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** OpenAPI 3.0 → JSON Schema: `nullable` becomes an explicit null alternative; refs are re-rooted. */
function toJsonSchema(node: Json): Json {
  if (Array.isArray(node)) return node.map(toJsonSchema);
  if (!isRecord(node)) return node;
  const out: { [key: string]: Json } = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === 'nullable') continue;
    if (key === '$ref' && typeof value === 'string') {
      out[key] = value.replace('#/components/schemas/', 'realtime#/schemas/');
      continue;
    }
    out[key] = toJsonSchema(value);
  }
  return node['nullable'] === true ? { anyOf: [out, { type: 'null' }] } : out;
}

export interface SchemaProblem {
  type: string;
  problems: string[];
}

export interface RealtimeSchemas {
  /** null when valid, else the type and ajv's messages naming the field */
  checkClientEvent(event: unknown): SchemaProblem | null;
  checkServerEvent(event: unknown): SchemaProblem | null;
}

let cached: RealtimeSchemas | null = null;

export function realtimeSchemas(): RealtimeSchemas {
  if (cached !== null) return cached;
  const file = JSON.parse(readFileSync(SCHEMA_FILE, 'utf8')) as { schemas: { [name: string]: Json } };
  const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
  ajv.addSchema({ $id: 'realtime', schemas: toJsonSchema(file.schemas) } as object);
  const compile = (name: string): ValidateFunction => {
    const validate = ajv.getSchema(`realtime#/schemas/${name}`);
    if (validate === undefined) throw new Error(`no schema ${name} in ${SCHEMA_FILE.pathname}`);
    return validate;
  };
  const client = compile('RealtimeClientEvent');
  const server = compile('RealtimeServerEvent');
  // The union's own errors say only "must match one branch"; the branch for the event's type names the field.
  const branch = (kind: 'Client' | 'Server', event: unknown): ValidateFunction | null => {
    const type = typeof event === 'object' && event !== null ? (event as { type?: unknown }).type : undefined;
    if (typeof type !== 'string') return null;
    const name = branchNames(file.schemas, kind).get(type);
    return name === undefined ? null : compile(name);
  };
  const check = (kind: 'Client' | 'Server', union: ValidateFunction, event: unknown): SchemaProblem | null => {
    if (union(event)) return null;
    const type = String((event as { type?: unknown } | null)?.type ?? '(no type)');
    const specific = branch(kind, event);
    const errors = specific !== null && !specific(event) ? specific.errors : union.errors;
    return { type, problems: (errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? 'invalid'}${e.params === undefined ? '' : ` ${JSON.stringify(e.params)}`}`) };
  };
  cached = {
    checkClientEvent: (event) => check('Client', client, event),
    checkServerEvent: (event) => check('Server', server, event),
  };
  return cached;
}

const branchCache = new Map<string, Map<string, string>>();

/** event type → the schema that describes it, from each schema's `type` enum or const. */
function branchNames(schemas: { [name: string]: Json }, kind: 'Client' | 'Server'): Map<string, string> {
  const hit = branchCache.get(kind);
  if (hit !== undefined) return hit;
  const map = new Map<string, string>();
  for (const [name, schema] of Object.entries(schemas)) {
    if (!name.startsWith(`Realtime${kind}Event`) || name === `Realtime${kind}Event` || !isRecord(schema)) continue;
    const props = schema['properties'];
    const typeSchema = isRecord(props ?? null) ? (props as { [key: string]: Json })['type'] : undefined;
    if (typeSchema === undefined || !isRecord(typeSchema)) continue;
    const values = Array.isArray(typeSchema['enum']) ? typeSchema['enum'] : typeSchema['const'] !== undefined ? [typeSchema['const']] : [];
    for (const v of values) if (typeof v === 'string') map.set(v, name);
  }
  branchCache.set(kind, map);
  return map;
}
