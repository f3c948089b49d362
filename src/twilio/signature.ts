/**
 * Twilio request signatures (X-Twilio-Signature) for the voice webhook and the Media Streams
 * handshake. The URL that is checked always comes from PUBLIC_URL: a Host header is chosen by
 * whoever sends the request, so a URL rebuilt from it proves nothing.
 *
 * Port handling: `twilio.validateRequest` (v6, lib/webhooks/webhooks.js) already accepts a
 * signature made over the URL with the port removed or with the scheme's default port added
 * (":443" for https, ":80" for any other scheme), and then the same two for the URL as
 * normalised by `new URL()`, with and without a legacy-escaped query string. Twilio signs the
 * URL exactly as configured, and an explicit `:443` may or may not survive its proxies, so we
 * pass one canonical URL and let the library try the variants rather than adding our own.
 */
import twilio from 'twilio';

/** Form fields as @fastify/formbody parses them: a repeated key becomes an array. */
export type FormParams = Readonly<Record<string, string | readonly string[]>>;

/** A header as Node hands it over; a repeated header arrives as an array. */
export type SignatureHeader = string | readonly string[] | undefined;

/**
 * The URL Twilio signed for `path` under `publicUrl`, keeping any base path. Built with `new URL`
 * like `voiceWebhookUrlFrom` (src/twilio/rest.ts), so it matches the voice URL that
 * `npm run twilio:configure` registers character for character. Throws on a base with a query or
 * fragment (the path would land after it), so call it once at startup, not per request.
 */
export function webhookUrl(publicUrl: string, path: string): string {
  const url = new URL(publicUrl);
  if (url.search !== '' || url.hash !== '') {
    throw new TypeError(`public URL must not carry a query string or fragment, got "${publicUrl}"`);
  }
  const suffix = path.startsWith('/') ? path : `/${path}`;
  url.pathname = `${url.pathname.replace(/\/+$/, '')}${suffix}`;
  return url.toString();
}

export interface WebhookSignatureCheck {
  authToken: string;
  /** the raw `x-twilio-signature` header */
  signature: SignatureHeader;
  /** from `webhookUrl(PUBLIC_URL, path)`, never from the request */
  url: string;
  /** the parsed form body; `{}` when the request had none */
  params: FormParams;
}

/** True only for a signature Twilio made with `authToken` over `url` and exactly these params. */
export function verifyWebhookSignature({ authToken, signature, url, params }: WebhookSignatureCheck): boolean {
  // An empty token would make the HMAC key public, so anyone could sign.
  if (authToken === '' || typeof signature !== 'string' || signature === '') return false;
  try {
    // The library reads params with Object.keys and indexing only; the cast drops readonly.
    return twilio.validateRequest(authToken, signature, url, params as Record<string, string | string[]>);
  } catch {
    // Its fallback path runs `new URL(url)`, which throws on a URL that cannot be parsed.
    return false;
  }
}

export interface StreamSignatureCheck {
  authToken: string;
  /** the raw `x-twilio-signature` header of the WebSocket upgrade */
  signature: SignatureHeader;
  /** the wss:// URL put in `<Stream url>` (`streamUrlFrom(PUBLIC_URL)`) */
  streamUrl: string;
}

/** The Media Streams handshake is signed over the stream URL alone: it has no form body. */
export function verifyStreamSignature({ authToken, signature, streamUrl }: StreamSignatureCheck): boolean {
  return verifyWebhookSignature({ authToken, signature, url: streamUrl, params: {} });
}

/**
 * The form body as `verifyWebhookSignature` needs it, or null when it holds anything but strings
 * (string arrays): such a body did not come from Twilio's form encoder and must not verify.
 * A missing body is an empty form, which Twilio signs as the URL alone.
 */
export function formParamsFrom(body: unknown): FormParams | null {
  if (body === undefined || body === null) return {};
  if (typeof body !== 'object' || Array.isArray(body)) return null;
  const out: Record<string, string | string[]> = {};
  for (const [key, value] of Object.entries(body as Record<string, unknown>)) {
    if (typeof value === 'string') out[key] = value;
    else if (Array.isArray(value) && value.every((v): v is string => typeof v === 'string')) out[key] = value;
    else return null;
  }
  return out;
}
