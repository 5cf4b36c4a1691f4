// The client as a WeChat mini-program runs it: no fetch, Request, Response, Headers or FormData,
// only `wx.request`. The stand-in `wx` below forwards to the live stack the way wx.request
// answers: status code, text data and a header object.
import { afterAll, expect, test } from "vitest";

import { createFuliClient, FuliError, newId, unwrap } from "../src/index.js";
import { type WxLike, type WxRequestOptions, wxTransport } from "../src/wx.js";
import { baseUrl, keyOf, member } from "./stack.js";

const WEB_GLOBALS = ["fetch", "Request", "Response", "Headers", "FormData"] as const;
const scope = globalThis as Record<string, unknown>;
const saved = Object.fromEntries(WEB_GLOBALS.map((name) => [name, scope[name]]));
const nodeFetch = globalThis.fetch;
const sent: WxRequestOptions[] = [];

const wx: WxLike = {
  request(options) {
    sent.push(options);
    nodeFetch(options.url, { method: options.method, headers: options.header, body: options.data })
      .then(async (response) => {
        const header: Record<string, string> = {};
        response.headers.forEach((value, name) => {
          header[name] = value;
        });
        options.success({ statusCode: response.status, data: await response.text(), header });
      })
      .catch((error: Error) => options.fail({ errMsg: `request:fail ${error.message}` }));
  },
};

afterAll(() => {
  for (const name of WEB_GLOBALS) scope[name] = saved[name];
});

test("earn and read through wx.request, with no web globals", async () => {
  const ingest = await keyOf("ingest");
  const alice = member();
  const token = await unwrap(
    ingest.POST("/points/v1/member-tokens", { body: { member_id: alice } }),
  );

  for (const name of WEB_GLOBALS) delete scope[name];
  try {
    const asAlice = createFuliClient({ baseUrl, memberToken: token.token, ...wxTransport(wx) });
    await expect(
      unwrap(asAlice.GET("/points/v1/members/{member_id}", { params: { path: { member_id: alice } } })),
    ).resolves.toMatchObject({ member_id: alice, available: 0 });
    const refused = await unwrap(
      asAlice.POST("/rewards/v1/redemptions", {
        body: { redemption_id: newId("redeem"), member_id: alice, sku: "no-such-perk" },
      }),
    ).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(FuliError);
    expect((refused as FuliError).status).toBe(404);
    expect((refused as FuliError).requestId).toBeTruthy();
  } finally {
    for (const name of WEB_GLOBALS) scope[name] = saved[name];
  }
  const post = sent.find((options) => options.method === "POST");
  expect(post?.header["content-type"]).toBe("application/json");
  expect(post?.header.authorization).toBe(`Bearer ${token.token}`);
  expect(JSON.parse(post?.data ?? "{}")).toMatchObject({ member_id: alice });
});

test("a runtime with its own Headers but no fetch: the headers still go out", async () => {
  const ingest = await keyOf("ingest");
  const alice = member();
  const token = await unwrap(ingest.POST("/points/v1/member-tokens", { body: { member_id: alice } }));
  sent.length = 0;
  for (const name of ["fetch", "Request", "Response"] as const) delete scope[name];
  try {
    const asAlice = createFuliClient({ baseUrl, memberToken: token.token, ...wxTransport(wx) });
    const balance = await unwrap(
      asAlice.GET("/points/v1/members/{member_id}", { params: { path: { member_id: alice } } }),
    );
    expect(balance.member_id).toBe(alice);
  } finally {
    for (const name of WEB_GLOBALS) scope[name] = saved[name];
  }
  expect(sent[0]?.header.authorization).toBe(`Bearer ${token.token}`);
});
