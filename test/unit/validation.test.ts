import { describe, expect, it } from 'vitest';
import { Type } from 'typebox';
import { compile, fieldOf, problemText } from '../../src/validation/validator.js';
import { problemsOf, SchemaProblems, validatorCompiler } from '../../src/validation/fastify.js';

const Call = Type.Object(
  {
    to: Type.String({ pattern: '^\\+[1-9]\\d{1,14}$', expected: 'an E.164 phone number, e.g. +15551234567' }),
    amd: Type.Boolean({ default: false }),
    tools: Type.Optional(Type.Array(Type.Object({ name: Type.String({ minLength: 1 }) }))),
    mode: Type.Optional(Type.Union([Type.Literal('a'), Type.Literal('b')])),
  },
  { additionalProperties: false },
);
const check = compile(Call);

describe('the shared validator', () => {
  it('passes a valid value, filling in defaults in place', () => {
    const value: unknown = { to: '+15551234567' };
    expect(check.is(value)).toBe(true);
    expect(value).toEqual({ to: '+15551234567', amd: false });
  });

  it('names every bad field, with what was expected and what came', () => {
    const r = check.check({ to: 12, amd: 'yes', tools: [{ name: '' }, {}], mode: 'c', extra: 1 });
    expect(r.ok).toBe(false);
    if (r.ok) return;
    const byField = Object.fromEntries(r.problems.map((p) => [p.field, p.message]));
    expect(byField).toEqual({
      extra: 'extra is not a known field (known: to, amd, tools, mode)',
      to: 'to must be an E.164 phone number, e.g. +15551234567, got 12',
      amd: 'amd must be a boolean, got "yes"',
      'tools[0].name': 'tools[0].name must be at least 1 characters, got ""',
      'tools[1].name': 'tools[1].name is missing',
      mode: 'mode must be one of the allowed shapes, got "c"',
    });
  });

  it('says when the value itself has the wrong type', () => {
    const r = check.check([1]);
    expect(r).toEqual({ ok: false, problems: [{ field: '', keyword: 'type', message: 'the value must be an object, got [1]' }] });
    if (!r.ok) expect(problemText(r.problems)).toBe('the value must be an object, got [1]');
  });

  it('names a bad key of a map', () => {
    const Map = compile(Type.Record(Type.String(), Type.String(), { propertyNames: { pattern: '^[a-z]+$' } }));
    const r = Map.check({ 'Bad key': 'x' });
    expect(r.ok ? [] : r.problems.map((p) => p.message)).toEqual(['Bad key is not a valid key: it must be text matching /^[a-z]+$/']);
  });

  it('reads JSON pointers as dotted fields', () => {
    expect(fieldOf('')).toBe('');
    expect(fieldOf('/tools/2/name')).toBe('tools[2].name');
    expect(fieldOf('/a~1b/c~0d')).toBe('a/b.c~d');
  });

  it('words a failure as the schema asks: `problem` without the value', () => {
    const Prompt = compile(Type.Object({ instructions: Type.String({ pattern: '\\S', problem: 'must be a non-empty string' }) }));
    const r = Prompt.check({ instructions: '   ' });
    expect(r.ok ? [] : r.problems.map((p) => p.message)).toEqual(['instructions must be a non-empty string']);
  });

  it('names the value after its part of the request in a Fastify route', () => {
    const validate = validatorCompiler({ schema: Call, method: 'POST', url: '/calls', httpPart: 'body' });
    expect(validate({ to: '+15551234567' })).toBe(true);
    const failed = validate(null) as { error: Error };
    expect(failed.error).toBeInstanceOf(SchemaProblems);
    expect(problemsOf(failed.error).map((p) => p.message)).toEqual(['body must be an object, got null']);
    expect(problemsOf(undefined)).toEqual([]);
  });
});
