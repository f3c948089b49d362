/**
 * Points a Twilio number's voice webhook at this service: `<url>/incoming-call`, fetched with POST.
 *
 *   npm run twilio:configure -- --number +15551234567 [--url https://abc.ngrok.app]
 *
 * Credentials from TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN. Exit codes: 0 done, 2 usage or
 * configuration error (nothing was sent to Twilio), 1 the Twilio API refused or was unreachable.
 *
 * TWILIO_API_BASE_URL (as for the service's hang-ups and transfers) sends every request to a
 * local double or proxy instead of api.twilio.com. An environment variable rather than a flag keeps it out of `--help` and of
 * shell history; the warning it prints keeps it from going unnoticed.
 */
import { parseArgs } from 'node:util';

import { TwilioApiError, TwilioInputError, configureVoiceWebhook, createTwilioClient, voiceWebhookUrlFrom } from '../src/twilio/rest.js';

const USAGE = `Usage: npm run twilio:configure -- --number <E.164 number> [--url <public https URL>]

Sets the voice webhook of a number on your Twilio account to <url>/incoming-call (POST).

  --number  the number to configure, E.164 (e.g. +15551234567)   required
  --url     the public base URL of this service                  default: $PUBLIC_URL
  --help    show this help

Credentials: TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN.
Exit codes: 0 done, 2 usage or configuration error, 1 Twilio API error.`;

class UsageError extends Error {}

interface Invocation {
  phoneNumber: string;
  voiceUrl: string;
  accountSid: string;
  authToken: string;
  apiBaseUrl: string | undefined;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

function requireEnv(env: NodeJS.ProcessEnv, name: string): string {
  const value = nonEmpty(env[name]);
  if (value === undefined) throw new UsageError(`${name} is not set (the Twilio credentials come from TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN)`);
  return value;
}

/** null: --help was asked for. */
function parseInvocation(argv: string[], env: NodeJS.ProcessEnv): Invocation | null {
  let values: { number?: string | undefined; url?: string | undefined; help?: boolean | undefined };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { number: { type: 'string' }, url: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  if (values.help === true) return null;

  const phoneNumber = nonEmpty(values.number);
  if (phoneNumber === undefined) throw new UsageError('--number is required (E.164, e.g. --number +15551234567)');
  const base = nonEmpty(values.url) ?? nonEmpty(env['PUBLIC_URL']);
  if (base === undefined) throw new UsageError('no public URL: pass --url https://… or set PUBLIC_URL');

  return {
    phoneNumber,
    voiceUrl: voiceWebhookUrlFrom(base),
    accountSid: requireEnv(env, 'TWILIO_ACCOUNT_SID'),
    authToken: requireEnv(env, 'TWILIO_AUTH_TOKEN'),
    apiBaseUrl: nonEmpty(env['TWILIO_API_BASE_URL']),
  };
}

async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let invocation: Invocation | null;
  let client: ReturnType<typeof createTwilioClient>;
  try {
    invocation = parseInvocation(argv, env);
    if (invocation === null) {
      console.log(USAGE);
      return 0;
    }
    client = createTwilioClient(invocation);
  } catch (err) {
    if (err instanceof UsageError || err instanceof TwilioInputError) {
      console.error(`twilio:configure: ${err.message}\n\n${USAGE}`);
      return 2;
    }
    throw err;
  }

  if (invocation.apiBaseUrl !== undefined) console.error(`twilio:configure: TWILIO_API_BASE_URL is set: talking to ${invocation.apiBaseUrl}, not Twilio`);

  try {
    const result = await configureVoiceWebhook(client, invocation);
    const before = result.previousVoiceUrl ?? '(none)';
    const change = result.previousVoiceUrl === result.voiceUrl ? `${result.voiceUrl} (unchanged)` : `${before} → ${result.voiceUrl}`;
    console.log(`${result.phoneNumber} (${result.sid}) on account ${invocation.accountSid}`);
    console.log(`  voice webhook: ${change}, method POST`);
    return 0;
  } catch (err) {
    if (err instanceof TwilioInputError) {
      console.error(`twilio:configure: ${err.message}`);
      return 2;
    }
    if (err instanceof TwilioApiError) {
      console.error(`twilio:configure: ${err.message}`);
      return 1;
    }
    throw err;
  }
}

main(process.argv.slice(2), process.env).then(
  (code) => {
    // exitCode rather than exit(): lets stdout drain when it is a pipe.
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error('twilio:configure: unexpected error:', err);
    process.exitCode = 1;
  },
);
