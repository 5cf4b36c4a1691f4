/**
 * Running the client in a WeChat mini-program, where there is no `fetch`, `Request`,
 * `Response`, `Headers` or `FormData`: `wxTransport(wx)` gives `createFuliClient` a fetch built
 * on `wx.request` and the few classes openapi-fetch needs.
 *
 *     import { createFuliClient, unwrap } from "@fuli/client";
 *     import { wxTransport } from "@fuli/client/wx";
 *
 *     const fuli = createFuliClient({ baseUrl: "https://api.example.com", memberToken,
 *                                     ...wxTransport(wx) });
 *
 * The domain must be on the mini-program's list of request domains (合法域名).
 */

/** The part of `wx.request`'s options and result this adapter uses. */
export interface WxRequestOptions {
  url: string;
  method: string;
  header: Record<string, string>;
  data?: string;
  dataType: string;
  responseType: "text";
  success(result: { statusCode: number; data: unknown; header: Record<string, string> }): void;
  fail(error: { errMsg: string }): void;
}

export interface WxLike {
  request(options: WxRequestOptions): unknown;
}

/** Anything with `forEach(value, name)`: ours, or a runtime's own `Headers` where it has one. */
interface HeadersLike {
  forEach(callback: (value: string, name: string) => void): void;
}

type HeadersInit = HeadersLike | Record<string, string> | [string, string][] | undefined;

function isHeadersLike(init: object): init is HeadersLike {
  return typeof (init as { forEach?: unknown }).forEach === "function";
}

/** The subset of `Headers` that openapi-fetch and this client use; names are case-insensitive. */
export class WxHeaders {
  private readonly values = new Map<string, string>();

  constructor(init?: HeadersInit) {
    if (Array.isArray(init)) {
      for (const [name, value] of init) this.append(name, value);
    } else if (init && isHeadersLike(init)) {
      init.forEach((value, name) => this.append(name, value));
    } else if (init) {
      for (const name of Object.keys(init)) this.set(name, init[name] as string);
    }
  }

  get(name: string): string | null {
    return this.values.get(name.toLowerCase()) ?? null;
  }

  has(name: string): boolean {
    return this.values.has(name.toLowerCase());
  }

  set(name: string, value: string): void {
    this.values.set(name.toLowerCase(), String(value));
  }

  append(name: string, value: string): void {
    const current = this.get(name);
    this.set(name, current === null ? value : `${current}, ${value}`);
  }

  delete(name: string): void {
    this.values.delete(name.toLowerCase());
  }

  entries(): IterableIterator<[string, string]> {
    return this.values.entries();
  }

  forEach(callback: (value: string, name: string) => void): void {
    this.values.forEach(callback);
  }

  [Symbol.iterator](): IterableIterator<[string, string]> {
    return this.entries();
  }

  toObject(): Record<string, string> {
    return Object.fromEntries(this.values);
  }
}

/** What openapi-fetch builds before each call. */
export class WxRequest {
  readonly url: string;
  readonly method: string;
  readonly headers: WxHeaders;
  readonly body: string | undefined;

  constructor(url: string, init: { method?: string; headers?: HeadersInit; body?: unknown } = {}) {
    this.url = url;
    this.method = (init.method ?? "GET").toUpperCase();
    this.headers = new WxHeaders(init.headers);
    this.body = init.body == null ? undefined : String(init.body);
  }
}

/** The answer of `wx.request` in the shape of a fetch `Response`. */
export class WxResponse {
  readonly status: number;
  readonly ok: boolean;
  readonly headers: WxHeaders;
  readonly body: string;

  constructor(status: number, body: string, headers: Record<string, string>) {
    this.status = status;
    this.ok = status >= 200 && status < 300;
    this.headers = new WxHeaders(headers);
    this.body = body;
  }

  async text(): Promise<string> {
    return this.body;
  }

  async json(): Promise<unknown> {
    return JSON.parse(this.body);
  }
}

/** A fetch that sends through `wx.request` (text in, text out; JSON is parsed by the client). */
export function wxFetch(wx: WxLike): (request: WxRequest) => Promise<WxResponse> {
  return (request) =>
    new Promise((resolve, reject) => {
      const options: WxRequestOptions = {
        url: request.url,
        method: request.method,
        header: request.headers.toObject(),
        dataType: "text",
        responseType: "text",
        success: (result) => {
          const data = typeof result.data === "string" ? result.data : JSON.stringify(result.data);
          resolve(new WxResponse(result.statusCode, data ?? "", result.header ?? {}));
        },
        fail: (error) => reject(new TypeError(`wx.request failed: ${error.errMsg}`)),
      };
      if (request.body !== undefined) options.data = request.body;
      wx.request(options);
    });
}

/**
 * Options for `createFuliClient` in a mini-program. openapi-fetch looks up `Headers` and
 * `FormData` globally, so these are defined on `globalThis` when the runtime has none.
 */
export function wxTransport(wx: WxLike): { fetch: never; Request: never } {
  const scope = globalThis as Record<string, unknown>;
  if (typeof scope.Headers === "undefined") scope.Headers = WxHeaders;
  if (typeof scope.FormData === "undefined") scope.FormData = class FormData {};
  // The classes stand in for the DOM ones only as far as openapi-fetch uses them.
  return { fetch: wxFetch(wx) as never, Request: WxRequest as never };
}
