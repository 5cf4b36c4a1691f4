// verifyWebhook against signatures made by the Standard Webhooks reference implementation (the
// `standardwebhooks` npm package, a devDependency only), the reference's published test vector,
// and every way a webhook can be forged, altered, replayed or malformed. No live stack needed.
import { webcrypto } from "node:crypto";

import { Webhook, WebhookVerificationError as ReferenceError } from "standardwebhooks";
import { describe, expect, test } from "vitest";

import {
  verifyWebhook,
  type VerifyWebhookOptions,
  type WebhookHeaders,
  WebhookVerificationError,
  type WebhookVerificationErrorCode,
} from "../src/index.js";

/** A fresh `whsec_` secret of 32 random bytes, as fuli gives one. */
function newSecret(): string {
  const bytes = new Uint8Array(32);
  webcrypto.getRandomValues(bytes);
  return `whsec_${Buffer.from(bytes).toString("base64")}`;
}

const NOW = 1_780_000_000; // seconds since the epoch: the time every test checks against
const at = (seconds: number) => new Date(seconds * 1000);

interface Signed {
  headers: Record<string, string>;
  body: string;
}

/** What fuli sends: the body, and the three headers signed by the reference implementation. */
function signed(
  secret: string | string[],
  options: { id?: string; timestamp?: number; body?: string } = {},
): Signed {
  const id = options.id ?? "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W";
  const timestamp = options.timestamp ?? NOW;
  const body =
    options.body ??
    JSON.stringify({
      type: "TierChanged",
      timestamp: "2026-06-01T08:00:00.123456Z",
      data: { member_id: "alice", from_tier: "silver", to_tier: "gold" },
    });
  const secrets = Array.isArray(secret) ? secret : [secret];
  const signatures = secrets.map((s) => new Webhook(s).sign(id, at(timestamp), body));
  return {
    headers: {
      "webhook-id": id,
      "webhook-timestamp": String(timestamp),
      "webhook-signature": signatures.join(" "),
    },
    body,
  };
}

async function refusal(
  secret: string,
  headers: WebhookHeaders,
  body: string | Uint8Array,
  options: VerifyWebhookOptions = { now: at(NOW) },
): Promise<WebhookVerificationErrorCode> {
  const error = await verifyWebhook(secret, headers, body, options).then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(WebhookVerificationError);
  expect(error).toBeInstanceOf(Error);
  return (error as WebhookVerificationError).code;
}

describe("signatures the reference implementation made", () => {
  test("verify, and give the parsed body", async () => {
    const secret = newSecret();
    const { headers, body } = signed(secret);
    const event = await verifyWebhook<{ member_id: string; to_tier: string }>(
      secret, headers, body, { now: at(NOW) },
    );
    expect(event).toEqual(JSON.parse(body));
    expect(event.type).toBe("TierChanged");
    expect(event.data.to_tier).toBe("gold");
  });

  test("the reference verifier accepts them too, at the current time", async () => {
    const secret = newSecret();
    const now = Math.floor(Date.now() / 1000);
    const { headers, body } = signed(secret, { timestamp: now });
    expect(new Webhook(secret).verify(body, headers)).toEqual(JSON.parse(body));
    await expect(verifyWebhook(secret, headers, body)).resolves.toEqual(JSON.parse(body));
  });

  test("headers as fetch Headers, a Request's, Node's lower-case record, or any case", async () => {
    const secret = newSecret();
    const { headers, body } = signed(secret);
    const options = { now: at(NOW) };
    const expected = JSON.parse(body);

    await expect(verifyWebhook(secret, new Headers(headers), body, options)).resolves.toEqual(
      expected,
    );
    const request = new Request("https://brand.example.com/hooks/fuli", {
      method: "POST",
      headers: { ...headers, "content-type": "application/json" },
      body,
    });
    await expect(
      verifyWebhook(secret, request.headers, await request.text(), options),
    ).resolves.toEqual(expected);
    const shouting = Object.fromEntries(
      Object.entries(headers).map(([name, value]) => [name.toUpperCase(), value]),
    );
    await expect(verifyWebhook(secret, shouting, body, options)).resolves.toEqual(expected);
    const node: Record<string, string | string[] | undefined> = {
      ...headers,
      "content-length": String(body.length),
      "x-forwarded-for": undefined,
      "webhook-signature": [headers["webhook-signature"] as string],
    };
    await expect(verifyWebhook(secret, node, body, options)).resolves.toEqual(expected);
  });

  test("the body as bytes, with characters outside ASCII", async () => {
    const secret = newSecret();
    const { headers, body } = signed(secret, {
      body: JSON.stringify({ type: "PrizeWon", timestamp: "t", data: { prize: "咖啡券 ☕" } }),
    });
    const bytes = new TextEncoder().encode(body);
    await expect(verifyWebhook(secret, headers, bytes, { now: at(NOW) })).resolves.toMatchObject(
      { data: { prize: "咖啡券 ☕" } },
    );
    await expect(
      verifyWebhook(secret, headers, bytes.buffer as ArrayBuffer, { now: at(NOW) }),
    ).resolves.toMatchObject({ type: "PrizeWon" });
    // A view into a larger buffer (as a Buffer from a pool often is): only its own bytes count.
    const pooled = new Uint8Array(bytes.length + 20);
    pooled.set(bytes, 10);
    await expect(
      verifyWebhook(secret, headers, pooled.subarray(10, 10 + bytes.length), { now: at(NOW) }),
    ).resolves.toMatchObject({ type: "PrizeWon" });
    await expect(
      verifyWebhook(secret, headers, Buffer.from(body), { now: at(NOW) }),
    ).resolves.toMatchObject({ type: "PrizeWon" });
  });

  test("a rotated secret: both signatures sent, either secret verifies", async () => {
    const old = newSecret();
    const rotated = newSecret();
    const { headers, body } = signed([old, rotated]);
    expect(headers["webhook-signature"]).toMatch(/^v1,\S+ v1,\S+$/);
    await expect(verifyWebhook(old, headers, body, { now: at(NOW) })).resolves.toBeTruthy();
    await expect(verifyWebhook(rotated, headers, body, { now: at(NOW) })).resolves.toBeTruthy();
    expect(await refusal(newSecret(), headers, body)).toBe("invalid_signature");
  });

  test("two signatures, only the second valid", async () => {
    const secret = newSecret();
    const { headers, body } = signed([newSecret(), secret]);
    await expect(verifyWebhook(secret, headers, body, { now: at(NOW) })).resolves.toBeTruthy();
    const [wrong] = (headers["webhook-signature"] as string).split(" ");
    expect(await refusal(secret, { ...headers, "webhook-signature": wrong as string }, body)).toBe(
      "invalid_signature",
    );
  });

  test("the secret without its whsec_ prefix works as in the reference", async () => {
    const secret = newSecret();
    const { headers, body } = signed(secret);
    await expect(
      verifyWebhook(secret.slice("whsec_".length), headers, body, { now: at(NOW) }),
    ).resolves.toBeTruthy();
  });
});

describe("the published test vector", () => {
  // The Standard Webhooks reference libraries' signing test ("sign function works" in
  // libraries/javascript/src/webhook.test.ts of github.com/standard-webhooks/standard-webhooks):
  // this secret, id, timestamp and body give this signature in every language's library.
  const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
  const body = '{"test": 2432232314}';
  const headers = {
    "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
    "webhook-timestamp": "1614265330",
    "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
  };
  const then = { now: at(1614265330) };

  test("the reference signs it so", () => {
    const signature = new Webhook(secret).sign(headers["webhook-id"], at(1614265330), body);
    expect(signature).toBe(headers["webhook-signature"]);
  });

  test("verifies, and any change to it does not", async () => {
    await expect(verifyWebhook(secret, headers, body, then)).resolves.toEqual({ test: 2432232314 });
    expect(await refusal(secret, headers, '{"test":2432232314}', then)).toBe("invalid_signature");
    expect(await refusal(secret, headers, body, { now: at(Date.now() / 1000) })).toBe(
      "timestamp_too_old",
    );
  });

  test("the spec's example header shape: a v1a (asymmetric) signature beside it is skipped",
    async () => {
      // The spec's example header's second entry.
      const ed25519 =
        "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM" +
        "+m7TBAg==";
      const signature = `${headers["webhook-signature"]} ${ed25519}`;
      const both = { ...headers, "webhook-signature": signature };
      await expect(verifyWebhook(secret, both, body, then)).resolves.toEqual({ test: 2432232314 });
      const only = { ...headers, "webhook-signature": ed25519 };
      expect(await refusal(secret, only, body, then)).toBe("invalid_signature");
    });
});

describe("refused", () => {
  const secret = newSecret();
  const { headers, body } = signed(secret);

  test("a tampered body, id or timestamp", async () => {
    expect(await refusal(secret, headers, body.replace("gold", "diamond"))).toBe(
      "invalid_signature",
    );
    expect(await refusal(secret, headers, `${body} `)).toBe("invalid_signature");
    // Parsed and serialised again: other bytes, though the same JSON.
    expect(await refusal(secret, headers, JSON.stringify(JSON.parse(body), null, 1))).toBe(
      "invalid_signature",
    );
    expect(await refusal(secret, { ...headers, "webhook-id": "msg_other" }, body)).toBe(
      "invalid_signature",
    );
    expect(
      await refusal(secret, { ...headers, "webhook-timestamp": String(NOW + 1) }, body),
    ).toBe("invalid_signature");
  });

  test("a wrong secret", async () => {
    expect(await refusal(newSecret(), headers, body)).toBe("invalid_signature");
  });

  test("an expired or future timestamp, the tolerance both ways", async () => {
    const tolerance = 300;
    const check = (now: number, toleranceSeconds?: number) =>
      verifyWebhook(secret, headers, body, { now: at(now), toleranceSeconds });
    await expect(check(NOW + tolerance)).resolves.toBeTruthy(); // exactly 300 s late: accepted
    await expect(check(NOW - tolerance)).resolves.toBeTruthy(); // exactly 300 s early: accepted
    expect(await refusal(secret, headers, body, { now: at(NOW + tolerance + 1) })).toBe(
      "timestamp_too_old",
    );
    expect(await refusal(secret, headers, body, { now: at(NOW - tolerance - 1) })).toBe(
      "timestamp_too_new",
    );
    expect(await refusal(secret, headers, body, { now: at(NOW + 3600 * 24) })).toBe(
      "timestamp_too_old",
    );
    await expect(check(NOW + 3600, 3600)).resolves.toBeTruthy();
    expect(
      await refusal(secret, headers, body, { now: at(NOW + 31), toleranceSeconds: 30 }),
    ).toBe("timestamp_too_old");
    await expect(check(NOW, -1)).rejects.toBeInstanceOf(RangeError);
  });

  test("the same event re-signed for a retry verifies: new timestamp, same webhook-id",
    async () => {
      const retry = signed(secret, { timestamp: NOW + 3600 });
      expect(retry.headers["webhook-id"]).toBe(headers["webhook-id"]);
      await expect(
        verifyWebhook(secret, retry.headers, retry.body, { now: at(NOW + 3601) }),
      ).resolves.toEqual(JSON.parse(body));
      // ...but the first attempt's headers replayed an hour later do not.
      expect(await refusal(secret, headers, body, { now: at(NOW + 3601) })).toBe(
        "timestamp_too_old",
      );
    });

  test("missing or empty headers", async () => {
    for (const name of ["webhook-id", "webhook-timestamp", "webhook-signature"]) {
      const without = Object.fromEntries(Object.entries(headers).filter(([n]) => n !== name));
      expect(await refusal(secret, without, body)).toBe("missing_headers");
      await expect(verifyWebhook(secret, without, body)).rejects.toThrow(`no ${name} header`);
      expect(await refusal(secret, new Headers(without), body)).toBe("missing_headers");
      expect(await refusal(secret, { ...headers, [name]: "" }, body)).toBe("missing_headers");
      expect(await refusal(secret, { ...headers, [name]: undefined }, body)).toBe(
        "missing_headers",
      );
    }
    expect(await refusal(secret, {}, body)).toBe("missing_headers");
  });

  test("a timestamp that is not whole seconds", async () => {
    for (const timestamp of ["hello", "1.5e9", "-1", `${NOW}.0`, `${NOW}abc`, "0x6a1b2c3d"]) {
      expect(await refusal(secret, { ...headers, "webhook-timestamp": timestamp }, body)).toBe(
        "invalid_timestamp",
      );
    }
  });

  test("malformed signatures", async () => {
    const valid = headers["webhook-signature"] as string;
    for (const signature of [
      "v1,dawfeoifkpqwoekfpqoekf",
      "v1,",
      "v1",
      valid.slice(0, 8),
      valid.slice(0, -2),
      valid.replace("v1,", "v2,"),
      valid.replace("v1,", ""),
      `${valid.replace("v1,", "v1,!")}`,
      "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
    ]) {
      expect(await refusal(secret, { ...headers, "webhook-signature": signature }, body)).toBe(
        "invalid_signature",
      );
    }
  });

  test("a correctly signed body that is not JSON", async () => {
    const plain = signed(secret, { body: "not json" });
    expect(await refusal(secret, plain.headers, plain.body)).toBe("invalid_payload");
  });

  test("a secret that is not whsec_ and base64: a TypeError, not a refusal", async () => {
    for (const bad of ["", "whsec_", "whsec_not base64!", "fuli_abc"]) {
      await expect(verifyWebhook(bad, headers, body, { now: at(NOW) })).rejects.toBeInstanceOf(
        TypeError,
      );
    }
  });

  test("ours refuses whatever the reference refuses, and accepts what it accepts", async () => {
    // At the current time, since the reference verifier always checks against it.
    const now = Math.floor(Date.now() / 1000);
    const fresh = signed(secret, { timestamp: now });
    const cases: Array<[string, Record<string, string>, string]> = [
      ["as sent", fresh.headers, fresh.body],
      ["body changed", fresh.headers, `${fresh.body}\n`],
      ["id changed", { ...fresh.headers, "webhook-id": "msg_x" }, fresh.body],
      // A minute past the 300 s tolerance: each verifier reads the clock itself, and "future"
      // at now + 301 was accepted by ours once a second had passed since the reference's turn.
      ["expired", signed(secret, { timestamp: now - 360 }).headers, fresh.body],
      ["future", signed(secret, { timestamp: now + 360 }).headers, fresh.body],
      ["no signature", { ...fresh.headers, "webhook-signature": "" }, fresh.body],
      ["other secret", signed(newSecret(), { timestamp: now }).headers, fresh.body],
    ];
    for (const [name, caseHeaders, caseBody] of cases) {
      let reference = true;
      try {
        new Webhook(secret).verify(caseBody, caseHeaders);
      } catch (error) {
        expect(error, name).toBeInstanceOf(ReferenceError);
        reference = false;
      }
      const ours = await verifyWebhook(secret, caseHeaders, caseBody).then(
        () => true,
        () => false,
      );
      expect(ours, name).toBe(reference);
      expect(ours, name).toBe(name === "as sent");
    }
  });
});

describe("where Web Crypto is not global (Node 18)", () => {
  test("a TypeError naming the way out, and { subtle } works", async () => {
    const secret = newSecret();
    const { headers, body } = signed(secret);
    const descriptor = Object.getOwnPropertyDescriptor(globalThis, "crypto");
    expect(descriptor?.configurable).toBe(true);
    delete (globalThis as { crypto?: unknown }).crypto;
    try {
      expect(globalThis.crypto).toBeUndefined();
      await expect(verifyWebhook(secret, headers, body, { now: at(NOW) })).rejects.toThrow(
        /pass \{ subtle \}/,
      );
      await expect(
        verifyWebhook(secret, headers, body, {
          now: at(NOW),
          subtle: webcrypto.subtle as SubtleCrypto,
        }),
      ).resolves.toEqual(JSON.parse(body));
    } finally {
      Object.defineProperty(globalThis, "crypto", descriptor as PropertyDescriptor);
    }
  });
});
