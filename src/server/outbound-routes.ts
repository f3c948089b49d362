/**
 * Outbound calls: POST /calls places one (bearer API_TOKEN), and Twilio's two callbacks of it.
 *
 * - POST /calls → Twilio REST `calls.create` with `url=` our POST /outbound-answer. The call token
 *   needs the CallSid, which only exists once Twilio created the call, so the TwiML cannot go in
 *   the create request; the callback answers with the same `<Connect><Stream>` + token as
 *   /incoming-call, and the call runs on the same agent path.
 * - POST /outbound-answer: the callee picked up. The profile, context and detection flag come in
 *   the callback URL's signed query (src/server/outbound-request.ts), not from this process's
 *   memory: whichever replica or worker Twilio reaches can answer.
 * - POST /amd-status: the answering-machine verdict (AsyncAmd). The process holding the call's
 *   stream hands it to the session (greeting, or voicemail then hang-up). Any other process
 *   (another replica, another worker) falls back to Twilio REST: for a machine, the live call's
 *   TwiML is replaced by the profile's voicemail in Twilio's `<Say>` voice and `<Hangup/>`; for a
 *   person nothing is done (the holding process greets once the callee speaks, or at its wait's end).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { AppConfig } from '../config.js';
import { missingForOutbound } from '../config.js';
import type { CallBridge } from '../call/bridge.js';
import { ANSWERED_BY_VALUES, amdVerdict } from '../call/amd.js';
import { personalize, selectProfile } from '../agent/resolve.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { webhookUrl } from '../twilio/signature.js';
import { hangupTwiml } from '../twilio/twiml.js';
import type { Admission } from './admission.js';
import type { App } from './app.js';
import type { CallAgents } from './call-agents.js';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { acceptOutboundRequest, callbackQuery, callbackStateFrom, MAX_OUTBOUND_BODY_BYTES, OutboundRequestSchema, refuseOutboundRequest } from './outbound-request.js';
import type { OutboundCallbackState } from './outbound-request.js';
import type { TwilioAccess } from './twilio-access.js';
import { AMD_PARAMETER, AMD_PENDING, AMD_STATUS_PATH, OUTBOUND_ANSWER_PATH, PROFILE_PARAMETER, callContextFrom, callParameters } from './twiml-contract.js';
import { connectStream, formString, refusedForm, TWILIO_CALLBACK_ROUTE } from './webhook-routes.js';
import { problemsOf, validatorCompiler } from '../validation/fastify.js';

/** Route that places an outbound call. */
export const CALLS_PATH = '/calls';
/** What Twilio reports as the Direction of a call placed through the REST API. */
const OUTBOUND_DIRECTION = 'outbound-api';

export interface OutboundRoutesDeps {
  config: AppConfig;
  access: TwilioAccess;
  agents: CallAgents;
  admission: Admission;
  metrics: Metrics;
  logger: Logger;
  /** every open media-stream connection of this process: the AMD verdict goes to the call's */
  calls: ReadonlySet<CallBridge>;
  /** ms since the epoch: `{{now}}` in the REST fallback's voicemail */
  wallClock: () => number;
}

export function registerOutboundRoutes(app: App, deps: OutboundRoutesDeps): void {
  const { config, access, admission, metrics, logger } = deps;
  const profileNames = [config.profiles.defaultName, ...config.profiles.byName.keys()];

  // Both callbacks exist whether or not this process places calls: another replica, with
  // API_TOKEN, may have placed the call Twilio now reports on.
  const typed = app.withTypeProvider<TypeBoxTypeProvider>();
  typed.post(OUTBOUND_ANSWER_PATH, TWILIO_CALLBACK_ROUTE, async (request, reply) => {
    const params = await access.signedForm(request, reply, OUTBOUND_ANSWER_PATH, 'outbound answer', { signedQuery: true });
    if (params === null || (await refusedForm(request, reply, 'outbound answer', logger))) return reply;
    const callSid = formString(params, 'CallSid');
    const state = stateOf(request, profileNames);
    if (state === null) {
      // Signed, so ours: a profile renamed or a limit changed between placing and answering.
      logger.error({ callSid, url: request.url.slice(0, 300) }, 'outbound call answered with callback state this service cannot read: hanging up');
      return reply.type('text/xml').send(hangupTwiml());
    }
    const verdict = admission.mayAnswer(callSid);
    if (!verdict.ok) {
      // A callee who picked up hears nothing rather than "call again later" from whoever called them.
      metrics.rejectedConnection(verdict.why === 'memory-full' ? 'busy' : verdict.why);
      logger.warn({ callSid, why: verdict.why }, 'outbound call answered but not admitted (draining, MAX_CALLS or the stream memory): hanging up');
      return reply.type('text/xml').send(hangupTwiml());
    }
    const described: Record<string, string> = {
      ...state.context,
      ...callParameters({ from: formString(params, 'From'), to: formString(params, 'To'), direction: formString(params, 'Direction') ?? OUTBOUND_DIRECTION }),
      ...(state.profile === null ? {} : { [PROFILE_PARAMETER]: state.profile }),
      ...(state.amd ? { [AMD_PARAMETER]: AMD_PENDING } : {}),
    };
    const twiml = connectStream(request, deps, callSid, described);
    logger.info({ callSid, profile: state.profile, amd: state.amd, contextKeys: Object.keys(state.context) }, 'outbound call answered: connecting the agent with <Connect><Stream>');
    return reply.type('text/xml').send(twiml.xml);
  });

  typed.post(AMD_STATUS_PATH, TWILIO_CALLBACK_ROUTE, async (request, reply) => {
    const params = await access.signedForm(request, reply, AMD_STATUS_PATH, 'answering-machine status', { signedQuery: true });
    if (params === null || (await refusedForm(request, reply, 'answering-machine status', logger))) return reply;
    const callSid = formString(params, 'CallSid');
    const answeredBy = formString(params, 'AnsweredBy') ?? 'unknown';
    metrics.amdResult(ANSWERED_BY_VALUES.includes(answeredBy) ? answeredBy : 'other');
    const bridge = callSid === null ? undefined : [...deps.calls].find((c) => c.session.ids.callSid === callSid && !c.session.isEnded);
    if (bridge !== undefined) {
      logger.info({ callSid, answeredBy }, 'answering-machine verdict: handed to the call');
      bridge.amdResult(answeredBy);
    } else if (callSid !== null) {
      restFallback(deps, callSid, answeredBy, params, stateOf(request, profileNames));
    }
    return reply.code(204).send();
  });

  if (config.apiToken === null) return;
  const tokenDigest = digest(config.apiToken);
  // Checked before the body is read: an unauthenticated client gets nothing parsed.
  const authorize = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    if (bearerMatches(request.headers.authorization, tokenDigest)) return;
    metrics.outboundCall('unauthorized');
    logger.warn({ ip: request.ip, bearer: request.headers.authorization === undefined ? 'missing' : 'wrong' }, 'POST /calls refused: missing or wrong bearer token');
    await reply.code(401).header('www-authenticate', 'Bearer').send({ error: 'unauthorized: send Authorization: Bearer <API_TOKEN>' });
  };

  // The body is checked against its schema by the service's validator, but the verdict is
  // attached rather than answered (attachValidation): a service without outbound configuration
  // says so first, whatever the body.
  const route = { bodyLimit: MAX_OUTBOUND_BODY_BYTES, onRequest: authorize, schema: { body: OutboundRequestSchema }, validatorCompiler, attachValidation: true };
  typed.post(CALLS_PATH, route, async (request, reply) => {
    const missing = missingForOutbound(config);
    const rest = access.rest;
    if (missing.length > 0 || rest === null || config.publicUrl === null || config.twilioFromNumber === null) {
      metrics.outboundCall('unconfigured');
      return reply.code(503).send({ error: `outbound calls are not configured: set ${missing.join(', ')}`, missing });
    }
    const parsed =
      request.validationError === undefined
        ? acceptOutboundRequest(request.body, profileNames)
        : refuseOutboundRequest(problemsOf(request.validationError), request.body, profileNames);
    if (!parsed.ok) {
      metrics.outboundCall('invalid');
      logger.info({ problems: parsed.problems }, 'POST /calls refused: invalid body');
      return reply.code(400).send({ error: `invalid request: ${parsed.problems.join('; ')}`, problems: parsed.problems });
    }
    const verdict = admission.mayAnswer(null);
    if (!verdict.ok) {
      metrics.outboundCall('refused');
      logger.warn({ to: parsed.call.to, why: verdict.why }, 'POST /calls refused: no room for another call');
      return reply.code(503).send({ error: verdict.why === 'draining' ? 'the service is draining: no new calls' : 'every line is taken (MAX_CALLS): try again later' });
    }
    const { to, profile, context, amd } = parsed.call;
    const query = callbackQuery({ profile, context, amd });
    try {
      const placed = await rest.placeCall({
        to,
        from: config.twilioFromNumber,
        url: `${webhookUrl(config.publicUrl, OUTBOUND_ANSWER_PATH)}${query}`,
        amdStatusCallback: amd ? `${webhookUrl(config.publicUrl, AMD_STATUS_PATH)}${query}` : null,
      });
      metrics.outboundCall('placed');
      logger.info({ callSid: placed.callSid, to, profile, amd, contextKeys: Object.keys(context), status: placed.status }, 'outbound call placed');
      return reply.code(201).send({ callSid: placed.callSid, status: placed.status });
    } catch (err) {
      metrics.outboundCall('failed');
      logger.warn({ to, err: (err as Error).message }, 'outbound call could not be placed');
      return reply.code(502).send({ error: `Twilio did not place the call: ${(err as Error).message}` });
    }
  });
}

/** The state a callback's signed query carries. */
function stateOf(request: FastifyRequest, profiles: readonly string[]): OutboundCallbackState | null {
  const at = request.url.indexOf('?');
  return callbackStateFrom(new URLSearchParams(at < 0 ? '' : request.url.slice(at + 1)), profiles);
}

/**
 * The verdict of a call whose stream this process does not hold. A machine gets the profile's
 * voicemail (its static text, with the call's context filled in: AGENT_CONFIG_URL is not asked
 * here) in Twilio's voice, or a hang-up without one; a fax a hang-up. Runs after the callback is
 * answered: Twilio does not wait on it.
 */
function restFallback(deps: OutboundRoutesDeps, callSid: string, answeredBy: string, params: Readonly<Record<string, unknown>>, state: OutboundCallbackState | null): void {
  const { config, access, logger } = deps;
  const verdict = amdVerdict(answeredBy);
  if (verdict !== 'machine' && verdict !== 'fax') {
    logger.info({ callSid, answeredBy }, 'answering-machine verdict for a call whose stream is not here: nothing to do for a person');
    return;
  }
  const rest = access.rest;
  if (rest === null) {
    logger.warn({ callSid, answeredBy }, 'answering-machine verdict for a call whose stream is not here, and no REST credentials to act on it');
    return;
  }
  const form = (key: string): string | null => (typeof params[key] === 'string' && params[key] !== '' ? (params[key] as string) : null);
  const parties = { from: form('From'), to: form('To'), direction: form('Direction') ?? OUTBOUND_DIRECTION };
  const described = { ...(state?.context ?? {}), ...callParameters(parties) };
  const context = callContextFrom(callSid, described, new Date(deps.wallClock()).toISOString());
  const agent = selectProfile(config, context, state?.profile ?? null).agent;
  const voicemail = verdict === 'machine' && agent.voicemail !== null ? personalize(agent, context).agent.voicemail : null;
  const action = voicemail === null ? rest.hangUp(callSid) : rest.sayThenHangUp(callSid, voicemail);
  action.then(
    (result) => logger.info({ callSid, answeredBy, voicemail: voicemail !== null, result }, 'answering-machine verdict for a call whose stream is not here: applied through Twilio REST'),
    (err: unknown) => logger.warn({ callSid, answeredBy, err: (err as Error).message }, 'answering-machine REST fallback failed'),
  );
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/**
 * `Authorization: Bearer <token>`, compared in constant time: both sides are hashed first, so
 * neither the token's length nor its first wrong character shows in the time taken.
 */
function bearerMatches(header: string | undefined, tokenDigest: Buffer): boolean {
  if (header === undefined) return false;
  const m = /^Bearer +(\S+)\s*$/i.exec(header);
  if (m === null || m[1] === undefined) return false;
  return timingSafeEqual(digest(m[1]), tokenDigest);
}
