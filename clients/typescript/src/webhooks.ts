/**
 * Verifying the webhooks fuli sends: Standard Webhooks (https://www.standardwebhooks.com)
 * signatures, HMAC-SHA256 over `${webhook-id}.${webhook-timestamp}.${body}` with the endpoint's
 * `whsec_...` secret.
 *
 * Web Crypto only (`globalThis.crypto.subtle`): it runs in Node 20+, Deno, Bun, Cloudflare
 * Workers and browsers, with no dependency. In Node 18, pass `{ subtle: webcrypto.subtle }` from
 * `node:crypto`.
 */

/** Why a webhook was refused; `error.code` of a `WebhookVerificationError`. */
export type WebhookVerificationErrorCode =
  /** `webhook-id`, `webhook-timestamp` or `webhook-signature` is missing or empty. */
  | "missing_headers"
  /** `webhook-timestamp` is not a whole number of seconds since the epoch. */
  | "invalid_timestamp"
  /** No `v1` signature in `webhook-signature` matches the body, id and timestamp. */
  | "invalid_signature"
  /** Correctly signed, but `webhook-timestamp` is older than the tolerance allows. */
  | "timestamp_too_old"
  /** Correctly signed, but `webhook-timestamp` is further ahead than the tolerance allows. */
  | "timestamp_too_new"
  /** Correctly signed and on time, but the body is not JSON. */
  | "invalid_payload";

/**
 * A webhook that must not be trusted: answer it with a 4xx (400 or 401) and do not act on it.
 * `code` says why, for logs; the message never includes the secret or the expected signature.
 */
export class WebhookVerificationError extends Error {
  readonly code: WebhookVerificationErrorCode;

  constructor(code: WebhookVerificationErrorCode, message: string) {
    super(message);
    this.name = "WebhookVerificationError";
    this.code = code;
  }
}

/** The body fuli sends to a webhook endpoint. */
export interface WebhookEvent<TData = Record<string, unknown>> {
  /** The event type, e.g. `TierChanged` (the endpoint subscribed to it or to `*`). */
  type: string;
  /** When the event happened (ISO 8601), not when this attempt was sent. */
  timestamp: string;
  /** The event's fields. */
  data: TData;
}

/**
 * The request's headers: a fetch `Headers` (`request.headers`), Node's `IncomingHttpHeaders`
 * (`req.headers`), or a plain object with names in any case.
 */
export type WebhookHeaders =
  | { get(name: string): string | null }
  | Record<string, string | readonly string[] | undefined>;

export interface VerifyWebhookOptions {
  /**
   * How far `webhook-timestamp` may be from now, either way, in seconds (default 300). Older
   * messages are refused as replays; ones from the future as a clock far off.
   */
  toleranceSeconds?: number;
  /** The time to check `webhook-timestamp` against (default: the current time). */
  now?: Date;
  /** A Web Crypto `SubtleCrypto` to use instead of `globalThis.crypto.subtle`. */
  subtle?: SubtleCrypto;
}

const SECRET_PREFIX = "whsec_";
const DEFAULT_TOLERANCE_SECONDS = 300;
const TIMESTAMP = /^[0-9]{1,15}$/;

/**
 * Verifies a webhook fuli sent and returns its parsed body, or throws a
 * `WebhookVerificationError`.
 *
 * `body` must be the raw body as received (a string, or the bytes): the signature covers those
 * exact bytes, so JSON parsed and serialised again will not verify. `webhook-signature` may
 * carry several space-separated signatures (while a secret is rotated fuli signs with both the
 * old and the new secret); one `v1` signature matching is enough, others are ignored. The
 * comparison takes the same time wherever the signatures differ. Deduplicate by the
 * `webhook-id` header: the same event is sent again, with the same id, until it is acknowledged.
 *
 *     const event = await verifyWebhook(process.env.FULI_WEBHOOK_SECRET!, request.headers,
 *                                       await request.text());
 */
export async function verifyWebhook<TData = Record<string, unknown>>(
  secret: string,
  headers: WebhookHeaders,
  body: string | Uint8Array | ArrayBuffer,
  options: VerifyWebhookOptions = {},
): Promise<WebhookEvent<TData>> {
  const tolerance = options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS;
  if (!Number.isFinite(tolerance) || tolerance < 0) {
    throw new RangeError("toleranceSeconds must be a finite number of seconds, 0 or more");
  }
  const subtle = options.subtle ?? globalThis.crypto?.subtle;
  if (!subtle) {
    throw new TypeError(
      "no Web Crypto here (globalThis.crypto.subtle): pass { subtle } " +
        "(in Node 18, webcrypto.subtle from node:crypto)",
    );
  }
  const key = await importSecret(subtle, secret);

  const id = header(headers, "webhook-id");
  const timestamp = header(headers, "webhook-timestamp");
  const signatures = header(headers, "webhook-signature");
  if (!id || !timestamp || !signatures) {
    const missing = Object.entries({ id, timestamp, signature: signatures })
      .filter(([, value]) => !value)
      .map(([name]) => `webhook-${name}`);
    throw new WebhookVerificationError(
      "missing_headers",
      `no ${missing.join(", ")} header: not a webhook fuli signed`,
    );
  }
  if (!TIMESTAMP.test(timestamp)) {
    throw new WebhookVerificationError(
      "invalid_timestamp",
      "webhook-timestamp is not a whole number of seconds since the epoch",
    );
  }

  const bytes = bodyBytes(body);
  const prefix = new TextEncoder().encode(`${id}.${timestamp}.`);
  const signed = new Uint8Array(prefix.length + bytes.length);
  signed.set(prefix);
  signed.set(bytes, prefix.length);
  const expected = new Uint8Array(await subtle.sign("HMAC", key, signed));

  let matched = false;
  // Space-separated `version,base64` entries; a trailing comma is what joining repeated headers
  // leaves. Other versions (v1a: asymmetric) are not this secret's to check.
  for (const entry of signatures.split(/\s+/)) {
    const comma = entry.indexOf(",");
    if (comma < 0 || entry.slice(0, comma) !== "v1") continue;
    const candidate = decodeBase64(entry.slice(comma + 1).replace(/,$/, ""));
    if (candidate !== null && constantTimeEqual(candidate, expected)) {
      matched = true;
      break;
    }
  }
  if (!matched) {
    throw new WebhookVerificationError(
      "invalid_signature",
      "no v1 signature in webhook-signature matches: a different secret, or the body, " +
        "webhook-id or webhook-timestamp changed on the way",
    );
  }

  // Checked once the signature holds, so these two codes mean "authentic but stale or early"
  // (a replay, or a clock that is off), never a forgery.
  const now = Math.floor((options.now ?? new Date()).getTime() / 1000);
  const sent = Number(timestamp);
  if (now - sent > tolerance) {
    throw new WebhookVerificationError(
      "timestamp_too_old",
      `webhook-timestamp is ${now - sent} s old, more than the ${tolerance} s allowed`,
    );
  }
  if (sent - now > tolerance) {
    throw new WebhookVerificationError(
      "timestamp_too_new",
      `webhook-timestamp is ${sent - now} s ahead, more than the ${tolerance} s allowed`,
    );
  }

  try {
    return JSON.parse(new TextDecoder().decode(bytes)) as WebhookEvent<TData>;
  } catch {
    throw new WebhookVerificationError("invalid_payload", "the body is not JSON");
  }
}

/** The HMAC key of a `whsec_<base64>` secret (the prefix is optional, as in Standard Webhooks). */
async function importSecret(subtle: SubtleCrypto, secret: string): Promise<CryptoKey> {
  if (typeof secret !== "string") throw new TypeError("the secret must be a string (whsec_...)");
  const encoded = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret;
  const raw = decodeBase64(encoded);
  if (raw === null || raw.length === 0) {
    // A configuration mistake, not a bad request: thrown as TypeError so it is not answered 4xx.
    throw new TypeError("the secret is not whsec_ followed by base64 (as fuli gave it)");
  }
  return subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
}

function header(headers: WebhookHeaders, name: string): string | undefined {
  if (typeof (headers as { get?: unknown }).get === "function") {
    return (headers as { get(name: string): string | null }).get(name)?.trim() || undefined;
  }
  const record = headers as Record<string, string | readonly string[] | undefined>;
  for (const key of Object.keys(record)) {
    if (key.toLowerCase() !== name) continue;
    const value = record[key];
    // A repeated header as an array: its values joined, as HTTP joins them.
    const text = typeof value === "string" ? value : value?.join(", ");
    return text?.trim() || undefined;
  }
  return undefined;
}

function bodyBytes(body: string | Uint8Array | ArrayBuffer): Uint8Array {
  if (typeof body === "string") return new TextEncoder().encode(body);
  if (body instanceof Uint8Array) return body;
  if (ArrayBuffer.isView(body)) {
    return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
  }
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  throw new TypeError("the body must be the raw body as received: a string or its bytes");
}

/** Standard base64 to bytes, or null when the text is not base64. */
function decodeBase64(text: string): Uint8Array<ArrayBuffer> | null {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return null;
  let binary: string;
  try {
    binary = atob(text);
  } catch {
    return null;
  }
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** Equal bytes, in a time that depends only on the lengths (which are public: 32 bytes). */
function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let difference = 0;
  for (let i = 0; i < a.length; i++) difference |= (a[i] as number) ^ (b[i] as number);
  return difference === 0;
}
