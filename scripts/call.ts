/**
 * Places an outbound call through a running callbridge (its POST /calls):
 *
 *   npm run call -- --to +15551234567 [--profile sales] [--context name=Ann …] [--amd] [--url http://localhost:5050]
 *
 * The bearer token comes from API_TOKEN in the environment (never a flag: it would land in shell
 * history). Prints the CallSid; exit codes: 0 placed, 2 usage error (nothing sent), 1 the service
 * refused or could not be reached (its error printed).
 */
import { parseArgs } from 'node:util';

const USAGE = `Usage: npm run call -- --to <E.164 number> [--profile <name>] [--context key=value …] [--amd] [--url <service URL>]

Asks the running service to call <to> with the agent of <profile> (POST /calls).

  --to       the number to call, E.164 (e.g. +15551234567)        required
  --profile  a profile of the config, by name                     default: the caller id's
  --context  key=value for {{context.key}}; repeat for more
  --amd      answering-machine detection: voicemail on a machine
  --url      the service's base URL                               default: http://localhost:\${PORT:-5050}
  --help     show this help

The bearer token: API_TOKEN. Exit codes: 0 placed, 2 usage error, 1 the service refused or is unreachable.`;

class UsageError extends Error {}

interface Invocation {
  url: string;
  token: string;
  body: { to: string; profile?: string; context?: Record<string, string>; amd?: boolean };
}

function invocation(argv: string[], env: NodeJS.ProcessEnv): Invocation | 'help' {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        to: { type: 'string' },
        profile: { type: 'string' },
        context: { type: 'string', multiple: true },
        amd: { type: 'boolean' },
        url: { type: 'string' },
        help: { type: 'boolean' },
      },
      strict: true,
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const v = parsed.values;
  if (v.help === true) return 'help';
  if (v.to === undefined) throw new UsageError('--to is required');
  const token = env['API_TOKEN']?.trim() ?? '';
  if (token === '') throw new UsageError('API_TOKEN is not set: it is the bearer token POST /calls requires');
  const context: Record<string, string> = {};
  for (const pair of v.context ?? []) {
    const at = pair.indexOf('=');
    if (at <= 0) throw new UsageError(`--context takes key=value, got "${pair}"`);
    context[pair.slice(0, at)] = pair.slice(at + 1);
  }
  const url = (v.url ?? `http://localhost:${env['PORT']?.trim() || '5050'}`).replace(/\/+$/, '');
  return {
    url,
    token,
    body: {
      to: v.to,
      ...(v.profile === undefined ? {} : { profile: v.profile }),
      ...(Object.keys(context).length === 0 ? {} : { context }),
      ...(v.amd === true ? { amd: true } : {}),
    },
  };
}

async function main(): Promise<number> {
  let call: Invocation | 'help';
  try {
    call = invocation(process.argv.slice(2), process.env);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    console.error(`error: ${err.message}\n\n${USAGE}`);
    return 2;
  }
  if (call === 'help') {
    console.log(USAGE);
    return 0;
  }
  let res: Response;
  try {
    res = await fetch(`${call.url}/calls`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${call.token}` },
      body: JSON.stringify(call.body),
    });
  } catch (err) {
    const cause = (err as Error & { cause?: unknown }).cause;
    console.error(`error: could not reach ${call.url}: ${cause instanceof Error ? cause.message : (err as Error).message}`);
    return 1;
  }
  const text = await res.text();
  let answer: Record<string, unknown> = {};
  try {
    answer = JSON.parse(text) as Record<string, unknown>;
  } catch {
    // not JSON (a proxy's page): printed as it came
  }
  if (res.status === 201 && typeof answer['callSid'] === 'string') {
    console.log(`${answer['callSid']} (${String(answer['status'])})`);
    return 0;
  }
  const error = typeof answer['error'] === 'string' ? answer['error'] : text.slice(0, 500);
  console.error(`error: HTTP ${res.status}${res.status === 404 ? ' (is API_TOKEN set on the service? Without it POST /calls does not exist)' : ''}: ${error}`);
  return 1;
}

process.exitCode = await main();
