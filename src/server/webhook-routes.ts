/**
 * Twilio's HTTP callbacks: POST /incoming-call (a call arrives: answer with a `<Stream>`, or busy)
 * and POST /transfer-status (a transfer's `<Dial>` ended: hang up, or bring the caller back to the
 * agent). Each answers TwiML; admission decides, TwilioAccess checks signatures and issues tokens.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { FormParams } from '../twilio/signature.js';
import { busyTwiml, connectStreamTwiml, hangupTwiml } from '../twilio/twiml.js';
import type { Admission } from './admission.js';
import type { App } from './app.js';
import type { Handoffs } from './handoffs.js';
import type { TwilioAccess } from './twilio-access.js';
import type { CallAgents } from './call-agents.js';
import {
  DIAL_STATUS_PARAMETER,
  INCOMING_CALL_PATH,
  RESUME_PARAMETER,
  TRANSFER_FAILED,
  TRANSFER_STATUS_PATH,
  callParameters,
  parameterValue,
} from './twiml-contract.js';
import { problemsOf, validatorCompiler } from '../validation/fastify.js';
import { Nullable } from '../validation/validator.js';

/** A form value as @fastify/formbody gives it: a repeated key becomes a list. */
const FormValue = Type.Union([Type.String(), Type.Array(Type.String())], { expected: 'text, or a list of text for a repeated key' });

/**
 * The form Twilio posts to a voice callback: the fields read here are named; Twilio sends many
 * more, all covered by its signature, so any other text field is kept. No body reads as an empty
 * form, as the signature check reads it.
 */
export const TwilioCallbackFormSchema = Nullable(
  Type.Object(
    {
      CallSid: Type.Optional(FormValue),
      From: Type.Optional(FormValue),
      To: Type.Optional(FormValue),
      Direction: Type.Optional(FormValue),
      DialCallStatus: Type.Optional(FormValue),
      AnsweredBy: Type.Optional(FormValue),
    },
    { additionalProperties: FormValue },
  ),
  { expected: 'a form of text fields' },
);

/**
 * Route options of a Twilio callback: its form checked by the service's validator, the verdict
 * attached rather than answered (attachValidation), so the signature is checked first and an
 * unsigned request learns nothing about what the form should hold.
 */
export const TWILIO_CALLBACK_ROUTE = { schema: { body: TwilioCallbackFormSchema }, validatorCompiler, attachValidation: true } as const;

/**
 * A signed callback whose form failed its schema: 400 naming the field, true. Twilio's own forms
 * always pass (formbody gives text fields only); this guards the handlers' reading of them.
 */
export async function refusedForm(request: FastifyRequest, reply: FastifyReply, what: string, logger: Logger): Promise<boolean> {
  if (request.validationError === undefined) return false;
  const problems = problemsOf(request.validationError).map((p) => p.message);
  logger.warn({ problems }, `${what} refused: invalid form`);
  await reply.code(400).send({ error: `invalid form: ${problems.join('; ')}`, problems });
  return true;
}

export interface WebhookRoutesDeps {
  access: TwilioAccess;
  /** each answered call's agent: asked for here, resolved when its stream starts */
  agents: CallAgents;
  admission: Admission;
  handoffs: Handoffs;
  metrics: Metrics;
  logger: Logger;
}

export function registerWebhookRoutes(app: App, { access, agents, admission, handoffs, metrics, logger }: WebhookRoutesDeps): void {
  const typed = app.withTypeProvider<TypeBoxTypeProvider>();
  typed.post(INCOMING_CALL_PATH, TWILIO_CALLBACK_ROUTE, async (request, reply) => {
    const params = await access.signedForm(request, reply, INCOMING_CALL_PATH, 'webhook');
    if (params === null || (await refusedForm(request, reply, 'webhook', logger))) return reply;
    const callSid = formString(params, 'CallSid');
    const verdict = admission.mayAnswer(callSid);
    if (!verdict.ok) {
      if (verdict.why === 'memory-full') {
        metrics.rejectedConnection('busy');
        logger.error({ callSid, remembered: verdict.remembered, windowMs: verdict.windowMs }, 'incoming call refused: the one-stream memory is full');
      } else {
        metrics.rejectedConnection(verdict.why);
        const { liveCalls, answeredNotStarted, maxCalls } = verdict;
        logger.warn({ callSid, liveCalls, answeredNotStarted, maxCalls, draining: verdict.why === 'draining' }, 'incoming call refused: line busy');
      }
      return reply.type('text/xml').send(busyTwiml());
    }
    // Who is calling, which number they dialled, which way: the agent's context and the tools
    // need them, and the call token binds them so the stream cannot bring others.
    const call = { from: formString(params, 'From'), to: formString(params, 'To'), direction: formString(params, 'Direction') };
    const twiml = connectStream(request, { access, agents, admission }, callSid, callParameters(call));
    logger.info({ callSid, streamUrl: twiml.streamUrl }, 'incoming call: answering with <Connect><Stream>');
    return reply.type('text/xml').send(twiml.xml);
  });

  // A transfer's <Dial> ended. Answered and finished: the call is over. Busy, no answer, failed:
  // the caller is not dropped but comes back to the agent on a new stream, which is told. Not
  // subject to MAX_CALLS or draining: the caller is on the line already.
  typed.post(TRANSFER_STATUS_PATH, TWILIO_CALLBACK_ROUTE, async (request, reply) => {
    const params = await access.signedForm(request, reply, TRANSFER_STATUS_PATH, 'transfer status');
    if (params === null || (await refusedForm(request, reply, 'transfer status', logger))) return reply;
    const callSid = formString(params, 'CallSid');
    const status = formString(params, 'DialCallStatus') ?? 'unknown';
    if (callSid === null || status === 'completed' || status === 'answered') {
      if (callSid !== null) handoffs.forget(callSid);
      logger.info({ callSid, dialCallStatus: status }, 'transfer finished: call over');
      return reply.type('text/xml').send(hangupTwiml());
    }
    const handoff = handoffs.peek(callSid);
    // The returning stream describes the call as the first one did, so its agent is the same.
    const described = handoff?.parameters ?? {};
    const parameters = access.streamParameters(callSid, {
      ...described,
      [RESUME_PARAMETER]: TRANSFER_FAILED,
      [DIAL_STATUS_PARAMETER]: parameterValue(status, 32),
    });
    admission.answered(callSid);
    agents.answered(callSid, described);
    logger.info({ callSid, dialCallStatus: status, target: handoff?.target ?? null }, 'transfer not answered: caller back to the agent');
    const streamUrl = access.streamUrl(request);
    return reply.type('text/xml').send(connectStreamTwiml(streamUrl, parameters));
  });
}

/**
 * The `<Connect><Stream>` of an admitted call (inbound, or an answered outbound one): its
 * parameters `described` plus the call token binding them, the stream announced to admission,
 * and AGENT_CONFIG_URL asked at once, while Twilio connects the call.
 */
export function connectStream(
  request: FastifyRequest,
  { access, agents, admission }: Pick<WebhookRoutesDeps, 'access' | 'agents' | 'admission'>,
  callSid: string | null,
  described: Record<string, string>,
): { xml: string; streamUrl: string } {
  const streamUrl = access.streamUrl(request);
  const parameters = callSid === null ? described : access.streamParameters(callSid, described);
  if (callSid !== null) {
    admission.answered(callSid);
    agents.answered(callSid, described);
  }
  return { xml: connectStreamTwiml(streamUrl, parameters), streamUrl };
}

export function formString(params: FormParams | null, key: string): string | null {
  const v = params?.[key];
  return typeof v === 'string' && v !== '' ? v : null;
}
