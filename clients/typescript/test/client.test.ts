// The client against a live fuli: FULI_URL and FULI_ADMIN_KEY (an admin key of a tenant).
import { beforeAll, describe, expect, test } from "vitest";

import {
  createFuliClient,
  FuliError,
  type FuliClient,
  newId,
  replayed,
  unwrap,
  unwrapResponse,
} from "../src/index.js";
import { baseUrl, keyOf, member, memberClient } from "./stack.js";

let ingest: FuliClient;
let operator: FuliClient;

beforeAll(async () => {
  ingest = await keyOf("ingest");
  operator = await keyOf("operator");
});

async function earn(memberId: string, amountCents: number) {
  return unwrap(
    ingest.POST("/points/v1/events", {
      body: {
        event_id: newId("order"),
        member_id: memberId,
        action: "purchase",
        amount_cents: amountCents,
      },
    }),
  );
}

describe("points", () => {
  test("earn, then read the balance as the member", async () => {
    const alice = member();
    const event = await earn(alice, 12_900);
    expect(event).toMatchObject({ status: "awarded", points: 129, balance: 129 });

    const asAlice = await memberClient(ingest, alice);
    const balance = await unwrap(
      asAlice.GET("/points/v1/members/{member_id}", { params: { path: { member_id: alice } } }),
    );
    expect(balance.available).toBe(129);
    expect(balance.lifetime_earned).toBe(129);
  });

  test("the same id again is a replay, another body under it a typed 409", async () => {
    const alice = member();
    const body = { event_id: newId("chat"), member_id: alice, action: "speak" };
    const first = await unwrapResponse(ingest.POST("/points/v1/events", { body }));
    const again = await unwrapResponse(ingest.POST("/points/v1/events", { body }));
    expect(replayed(first.response)).toBe(false);
    expect(replayed(again.response)).toBe(true);
    expect(again.data).toEqual(first.data);

    const conflict = await unwrap(
      ingest.POST("/points/v1/events", { body: { ...body, action: "survey" } }),
    ).catch((error: unknown) => error);
    expect(conflict).toBeInstanceOf(FuliError);
    expect(conflict).toMatchObject({ status: 409, code: "idempotency_conflict" });
  });

  test("a spend beyond the balance is a 409 with what is available", async () => {
    const alice = member();
    await earn(alice, 2_500);
    const refused = await unwrap(
      ingest.POST("/points/v1/debits", {
        body: { debit_id: newId("debit"), member_id: alice, points: 140, reason: "test" },
      }),
    ).catch((error: unknown) => error);
    if (!(refused instanceof FuliError)) throw new Error(`expected a FuliError: ${refused}`);
    expect(refused.status).toBe(409);
    expect(refused.code).toBe("insufficient_points");
    expect(refused.details.available).toBe(25);
    expect(refused.requestId).toBeTruthy();
  });

  test("a bad key is a typed 401", async () => {
    const stranger = createFuliClient({ baseUrl, apiKey: "fuli_0000000000000000_nosuchkey" });
    await expect(unwrap(stranger.GET("/points/v1/rules"))).rejects.toMatchObject({
      status: 401,
      code: "unauthorized",
    });
  });
});

describe("rewards", () => {
  test("redeem a code perk; a second redemption over the limit is a typed 409", async () => {
    const alice = member();
    await earn(alice, 10_000);
    const sku = newId("coffee").replace(":", "-");
    await unwrap(
      operator.PUT("/rewards/v1/perks/{sku}", {
        params: { path: { sku } },
        body: { name: "Free coffee", cost_points: 40, fulfilment: "code", per_member_limit: 1 },
      }),
    );
    await unwrap(
      operator.POST("/rewards/v1/perks/{sku}/codes", {
        params: { path: { sku } },
        body: { codes: [`${sku}-A`, `${sku}-B`] },
      }),
    );
    const asAlice = await memberClient(ingest, alice);
    const redemption = await unwrap(
      asAlice.POST("/rewards/v1/redemptions", {
        body: { redemption_id: newId("redeem"), member_id: alice, sku },
      }),
    );
    expect(redemption.status).toBe("completed");
    expect(redemption.points).toBe(40);
    expect(redemption.codes).toHaveLength(1);

    const again = asAlice.POST("/rewards/v1/redemptions", {
      body: { redemption_id: newId("redeem"), member_id: alice, sku },
    });
    await expect(unwrap(again)).rejects.toMatchObject({
      name: "FuliError",
      status: 409,
      code: "limit_reached",
    });
    const balance = await unwrap(
      asAlice.GET("/points/v1/members/{member_id}", { params: { path: { member_id: alice } } }),
    );
    expect(balance.available).toBe(60);
  });

  test("draw from a blind box and recompute the draw from its proof", async () => {
    const alice = member();
    await earn(alice, 5_000);
    const boxId = newId("box").replace(":", "-");
    const prizes = [
      { prize_id: "big", name: "100 points", kind: "points" as const, points: 100, weight: 1 },
      { prize_id: "none", name: "Thank you", kind: "nothing" as const, weight: 3 },
    ];
    const odds = await unwrap(
      operator.PUT("/rewards/v1/boxes/{box_id}", {
        params: { path: { box_id: boxId } },
        body: { name: "Lucky box", cost_points: 10, prizes },
      }),
    );
    expect(odds.commitment).toMatch(/^[0-9a-f]{64}$/);

    const asAlice = await memberClient(ingest, alice);
    const drawId = newId("draw");
    const draw = await unwrap(
      asAlice.POST("/rewards/v1/boxes/{box_id}/draws", {
        params: { path: { box_id: boxId } },
        body: { draw_id: drawId, member_id: alice },
      }),
    );
    expect(["big", "none"]).toContain(draw.prize.prize_id);

    await unwrap(
      operator.POST("/rewards/v1/boxes/{box_id}/seed/rotate", {
        params: { path: { box_id: boxId } },
      }),
    );
    const proof = await unwrap(
      asAlice.GET("/rewards/v1/boxes/{box_id}/draws/{draw_id}/proof", {
        params: { path: { box_id: boxId, draw_id: drawId } },
      }),
    );
    expect(proof.commitment).toBe(odds.commitment);
    expect(proof.prize_id).toBe(draw.prize.prize_id);
    expect(await recompute(proof.seed!, drawId, proof.candidates)).toBe(proof.prize_id);
    expect(await sha256Hex(hexBytes(proof.seed!))).toBe(proof.commitment);
  });
});

// HMAC-SHA256(seed, draw_id): its first 8 bytes scaled onto the weights laid end to end.
async function recompute(
  seedHex: string,
  drawId: string,
  candidates: { prize_id: string; weight: number }[],
): Promise<string> {
  const key = await crypto.subtle.importKey(
    "raw",
    hexBytes(seedHex),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const digest = new DataView(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(drawId)));
  const rolled = digest.getBigUint64(0);
  const total = candidates.reduce((sum, c) => sum + BigInt(c.weight), 0n);
  let point = (rolled * total) >> 64n;
  for (const candidate of candidates) {
    if (point < BigInt(candidate.weight)) return candidate.prize_id;
    point -= BigInt(candidate.weight);
  }
  throw new Error("the roll fell past every candidate");
}

function hexBytes(hex: string): Uint8Array<ArrayBuffer> {
  return new Uint8Array(hex.match(/../g)!.map((pair) => Number.parseInt(pair, 16)));
}

async function sha256Hex(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}
