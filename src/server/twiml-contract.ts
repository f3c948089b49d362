/**
 * What the TwiML this service answers and the requests Twilio then makes back agree on: the
 * paths Twilio calls, and the `<Parameter>`s a `<Stream>` carries to the stream's `start`. Written
 * by the webhook routes, read by the media-stream route; kept here so neither imports the other.
 */

/** Route of the voice webhook: Twilio posts every incoming call here. */
export const INCOMING_CALL_PATH = '/incoming-call';
/** Route Twilio posts the `<Dial>` outcome of a transfer to. */
export const TRANSFER_STATUS_PATH = '/transfer-status';
/** The Twilio callbacks whose form is signed over their URL under PUBLIC_URL. */
export type SignedCallbackPath = typeof INCOMING_CALL_PATH | typeof TRANSFER_STATUS_PATH;

/** `<Stream>` parameters: who is calling, and why a stream is a caller coming back from a transfer. */
export const FROM_PARAMETER = 'from';
export const TO_PARAMETER = 'to';
export const RESUME_PARAMETER = 'resume';
export const DIAL_STATUS_PARAMETER = 'dialStatus';
/** The RESUME_PARAMETER value of a caller whose transfer target did not answer. */
export const TRANSFER_FAILED = 'transfer-failed';

/** A stream that says it brings the caller back from a transfer (set by POST /transfer-status). */
export function isResume(customParameters: Readonly<Record<string, string>>): boolean {
  return customParameters[RESUME_PARAMETER] === TRANSFER_FAILED;
}
