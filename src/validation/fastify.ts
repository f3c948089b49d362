/**
 * Fastify routes validate their `schema` with the service's one validator (src/validation/
 * validator.ts) instead of Fastify's own ajv, whose defaults differ (it coerces types and drops
 * unknown fields): a route's body is checked exactly as the same schema is checked elsewhere,
 * and its errors are the same field-naming problems.
 */
import type { FastifySchemaCompiler } from 'fastify';
import type { TSchema } from 'typebox';
import { compile, problemText } from './validator.js';
import type { Problem } from './validator.js';

/** A route part that failed its schema; with `attachValidation` it is `request.validationError`. */
export class SchemaProblems extends Error {
  constructor(readonly problems: Problem[]) {
    super(problemText(problems));
    this.name = 'SchemaProblems';
  }
}

/** For a route's `validatorCompiler`. The part's name (`body`, `querystring`) names the whole value. */
export const validatorCompiler: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  const validator = compile(schema, { root: httpPart ?? 'value' });
  return (data: unknown) => (validator.is(data) ? true : { error: new SchemaProblems(validator.problems()) });
};

/** The problems of a request part that failed its schema: none when it passed. */
export function problemsOf(error: Error | undefined): Problem[] {
  if (error === undefined) return [];
  return error instanceof SchemaProblems ? error.problems : [{ field: '', keyword: 'schema', message: error.message }];
}
