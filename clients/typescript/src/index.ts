/**
 * @fuli/client: a typed client for the fuli points, rewards, tiers and webhooks APIs.
 *
 * The request and response types are generated from fuli's OpenAPI documents
 * (`src/generated/`, rebuilt by `npm run generate`); calls go through openapi-fetch. This file is
 * the only hand-written part: authentication, idempotency ids and the error envelope. It uses no
 * Node-only API, so it runs in Node 18+, browsers and (with `./wx`) WeChat mini-programs.
 */
import createClient, { type Client, type ClientOptions } from "openapi-fetch";

import type { components as PointsComponents, paths as PointsPaths } from "./generated/points.js";
import type {
  components as RewardsComponents,
  paths as RewardsPaths,
} from "./generated/rewards.js";
import type { components as TiersComponents, paths as TiersPaths } from "./generated/tiers.js";
import type {
  components as WebhooksComponents,
  paths as WebhooksPaths,
} from "./generated/webhooks.js";

/** Every path of the services: `/points/v1/...`, `/rewards/v1/...`, `/tiers/v1/...`,
 * `/webhooks/v1/...`. */
export type paths = PointsPaths & RewardsPaths & TiersPaths & WebhooksPaths;
export type PointsSchemas = PointsComponents["schemas"];
export type RewardsSchemas = RewardsComponents["schemas"];
export type TiersSchemas = TiersComponents["schemas"];
export type WebhooksSchemas = WebhooksComponents["schemas"];
export type { PointsPaths, RewardsPaths, TiersPaths, WebhooksPaths };

/**
 * Codes fuli answers with (`http_error`: an answer without fuli's envelope, from something in
 * front of it); a refusal decided by a feature may carry another stable code.
 */
export type FuliErrorCode =
  | "bad_request"
  | "validation_failed"
  | "unauthorized"
  | "forbidden"
  | "not_found"
  | "conflict"
  | "idempotency_conflict"
  | "payload_too_large"
  | "rate_limited"
  | "service_unavailable"
  | "insufficient_points"
  | "out_of_stock"
  | "limit_reached"
  | "not_eligible"
  | "not_available"
  | "redemption_failed"
  | "no_ticket"
  | "team_full"
  | "already_in_team"
  | "campaign_ended"
  | "overlapping_stay"
  | "own_packet"
  | "amount_required"
  | "nothing_to_claim"
  | "chain_cycle"
  | "kind_fixed"
  | "http_error"
  | (string & {});

/** The body of every error answer: `{"error": {"code", "message", "details"}}`. */
export interface ErrorEnvelope {
  error: { code: string; message: string; details: Record<string, unknown> };
}

/** A refused or failed call: the HTTP status and the envelope's `code`, `message`, `details`. */
export class FuliError extends Error {
  readonly status: number;
  readonly code: FuliErrorCode;
  readonly details: Record<string, unknown>;
  /** The server's `X-Request-Id`, to find the request in its log. */
  readonly requestId: string | null;
  /** Seconds to wait before sending the same request again (503 and 429). */
  readonly retryAfter: number | null;

  constructor(status: number, body: unknown, headers?: { get(name: string): string | null }) {
    const envelope = isEnvelope(body) ? body.error : undefined;
    super(envelope?.message ?? `HTTP ${status}`);
    this.name = "FuliError";
    this.status = status;
    // Without the envelope the answer came from something in front of fuli (a proxy, say).
    this.code = envelope?.code ?? "http_error";
    this.details = envelope?.details ?? {};
    this.requestId = headers?.get("x-request-id") ?? null;
    const retry = headers?.get("retry-after");
    this.retryAfter = retry == null || retry === "" ? null : Number(retry);
  }

  /** Worth sending again with the same id (the server was briefly unavailable or busy). */
  get retryable(): boolean {
    return this.status === 503 || this.status === 429;
  }
}

function isEnvelope(body: unknown): body is ErrorEnvelope {
  if (typeof body !== "object" || body === null || !("error" in body)) return false;
  const error = (body as { error: unknown }).error;
  return typeof error === "object" && error !== null && "code" in error;
}

/** What openapi-fetch resolves to: data on 2xx, error otherwise, and the response. */
type FetchResult = { data?: unknown; error?: unknown; response: Response };

/** The type of the success branch's data. */
export type DataOf<R> = R extends { data: infer D; error?: never } ? D : never;

/**
 * The body of a successful answer, or a thrown `FuliError`.
 *
 *     const event = await unwrap(fuli.POST("/points/v1/events", { body }));
 */
export async function unwrap<R extends FetchResult>(pending: Promise<R>): Promise<DataOf<R>> {
  return (await unwrapResponse(pending)).data;
}

/** Like `unwrap`, with the response too (e.g. `replayed(response)`). */
export async function unwrapResponse<R extends FetchResult>(
  pending: Promise<R>,
): Promise<{ data: DataOf<R>; response: Response }> {
  const result = await pending;
  if (result.error !== undefined || !result.response.ok) {
    throw new FuliError(result.response.status, result.error, result.response.headers);
  }
  return { data: result.data as DataOf<R>, response: result.response };
}

/** True when the answer is the stored answer of an earlier request with the same id. */
export function replayed(response: Response): boolean {
  return response.headers.get("idempotent-replayed") === "true";
}

const ID_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz";

/**
 * A fresh id for a value-moving request (`event_id`, `redemption_id`, `draw_id`, ...): 1-128
 * characters of `[A-Za-z0-9._:-]`. Make it once per intended operation and reuse it when
 * retrying that operation, so the server applies it once. Uses `crypto.getRandomValues` where
 * there is one, else `Math.random` (WeChat mini-programs), prefixed with the time.
 */
export function newId(prefix = ""): string {
  const random = new Uint8Array(16);
  const source = (globalThis as { crypto?: { getRandomValues?: (a: Uint8Array) => Uint8Array } })
    .crypto;
  if (source?.getRandomValues) {
    source.getRandomValues(random);
  } else {
    for (let i = 0; i < random.length; i++) random[i] = Math.floor(Math.random() * 256);
  }
  let text = Date.now().toString(36);
  for (const byte of random) text += ID_ALPHABET[byte % 36];
  return prefix ? `${prefix}:${text}` : text;
}

export interface FuliClientOptions {
  /** Where fuli serves, e.g. `http://127.0.0.1:8000` (no trailing `/points/v1`). */
  baseUrl: string;
  /** An API key (`fuli_...`, role admin, operator or ingest): for a brand's backend. */
  apiKey?: string;
  /** A member token from `POST /points/v1/member-tokens`: for a member's own app. */
  memberToken?: string;
  /** A fetch to use instead of the global one (e.g. `wxFetch(wx)` in a mini-program). */
  fetch?: ClientOptions["fetch"];
  /** A Request class to use instead of the global one (`WxRequest` in a mini-program). */
  Request?: ClientOptions["Request"];
  /** Headers sent with every call. */
  headers?: Record<string, string>;
}

export type FuliClient = Client<paths>;

/**
 * A client for every fuli path, authenticated with an API key or a member token.
 *
 *     const fuli = createFuliClient({ baseUrl, apiKey });
 *     const member = await unwrap(fuli.GET("/points/v1/members/{member_id}",
 *                                          { params: { path: { member_id: "alice" } } }));
 */
export function createFuliClient(options: FuliClientOptions): FuliClient {
  if (options.apiKey && options.memberToken) {
    throw new TypeError("give either apiKey or memberToken, not both");
  }
  const credential = options.apiKey ?? options.memberToken;
  const headers: Record<string, string> = { ...options.headers };
  if (credential) headers.Authorization = `Bearer ${credential}`;
  const clientOptions: ClientOptions = { baseUrl: options.baseUrl, headers };
  if (options.fetch) clientOptions.fetch = options.fetch;
  if (options.Request) clientOptions.Request = options.Request;
  return createClient<paths>(clientOptions);
}

export {
  type VerifyWebhookOptions,
  type WebhookEvent,
  type WebhookHeaders,
  WebhookVerificationError,
  type WebhookVerificationErrorCode,
  verifyWebhook,
} from "./webhooks.js";
