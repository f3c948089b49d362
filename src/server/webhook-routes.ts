/**
 * Twilio's HTTP callbacks: POST /incoming-call (a call arrives: answer with a `<Stream>`, or busy)
 * and POST /transfer-status (a transfer's `<Dial>` ended: hang up, or bring the caller back to the
 * agent). Each answers TwiML; admission decides, TwilioAccess checks signatures and issues tokens.
 */
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { FormParams } from '../twilio/signature.js';
import { busyTwiml, connectStreamTwiml, hangupTwiml } from '../twilio/twiml.js';
import type { Admission } from './admission.js';
import type { App } from './app.js';
import type { Handoffs } from './handoffs.js';
import type { TwilioAccess } from './twilio-access.js';
import { DIAL_STATUS_PARAMETER, FROM_PARAMETER, INCOMING_CALL_PATH, RESUME_PARAMETER, TO_PARAMETER, TRANSFER_FAILED, TRANSFER_STATUS_PATH } from './twiml-contract.js';

export interface WebhookRoutesDeps {
  access: TwilioAccess;
  admission: Admission;
  handoffs: Handoffs;
  metrics: Metrics;
  logger: Logger;
}

export function registerWebhookRoutes(app: App, { access, admission, handoffs, metrics, logger }: WebhookRoutesDeps): void {
  app.post(INCOMING_CALL_PATH, async (request, reply) => {
    const params = await access.signedForm(request, reply, INCOMING_CALL_PATH, 'webhook');
    if (params === null) return reply;
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
    const streamUrl = access.streamUrl(request);
    const parameters: Record<string, string> = callSid === null ? {} : access.callTokenParameter(callSid);
    // Who is calling and which number they dialled: tools and the agent's context need them.
    const from = formString(params, 'From');
    const to = formString(params, 'To');
    if (from !== null) parameters[FROM_PARAMETER] = from.slice(0, 64);
    if (to !== null) parameters[TO_PARAMETER] = to.slice(0, 64);
    if (callSid !== null) admission.answered(callSid);
    logger.info({ callSid, streamUrl }, 'incoming call: answering with <Connect><Stream>');
    return reply.type('text/xml').send(connectStreamTwiml(streamUrl, parameters));
  });

  // A transfer's <Dial> ended. Answered and finished: the call is over. Busy, no answer, failed:
  // the caller is not dropped but comes back to the agent on a new stream, which is told. Not
  // subject to MAX_CALLS or draining: the caller is on the line already.
  app.post(TRANSFER_STATUS_PATH, async (request, reply) => {
    const params = await access.signedForm(request, reply, TRANSFER_STATUS_PATH, 'transfer status');
    if (params === null) return reply;
    const callSid = formString(params, 'CallSid');
    const status = formString(params, 'DialCallStatus') ?? 'unknown';
    if (callSid === null || status === 'completed' || status === 'answered') {
      if (callSid !== null) handoffs.forget(callSid);
      logger.info({ callSid, dialCallStatus: status }, 'transfer finished: call over');
      return reply.type('text/xml').send(hangupTwiml());
    }
    const handoff = handoffs.peek(callSid);
    const parameters: Record<string, string> = {
      [RESUME_PARAMETER]: TRANSFER_FAILED,
      [DIAL_STATUS_PARAMETER]: status.slice(0, 32),
      ...access.callTokenParameter(callSid),
    };
    if (handoff?.from != null) parameters[FROM_PARAMETER] = handoff.from;
    if (handoff?.to != null) parameters[TO_PARAMETER] = handoff.to;
    admission.answered(callSid);
    logger.info({ callSid, dialCallStatus: status, target: handoff?.target ?? null }, 'transfer not answered: caller back to the agent');
    const streamUrl = access.streamUrl(request);
    return reply.type('text/xml').send(connectStreamTwiml(streamUrl, parameters));
  });
}

function formString(params: FormParams | null, key: string): string | null {
  const v = params?.[key];
  return typeof v === 'string' && v !== '' ? v : null;
}
