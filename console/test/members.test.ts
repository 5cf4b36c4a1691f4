import { describe, expect, it } from "vitest";

import {
  appendPage, type Balance, checkMemberId, checkTag, entryKindType, grantBody, isBlankBalance,
  isProblem, issueBody, type MemberTier, signedPoints, tierProgress,
} from "../src/lib/members";

describe("checkMemberId", () => {
  it("trims what was typed and takes fuli's id characters", () => {
    expect(checkMemberId("  alice.01:x-y_z ")).toEqual({ id: "alice.01:x-y_z" });
  });

  it("refuses an empty id, other characters and ids over 128 characters", () => {
    expect(checkMemberId("   ")).toEqual({ key: "members.idRequired" });
    expect(checkMemberId("ali ce")).toEqual({ key: "members.idInvalid" });
    expect(checkMemberId("alice/1")).toEqual({ key: "members.idInvalid" });
    expect(checkMemberId("a".repeat(128))).toEqual({ id: "a".repeat(128) });
    expect(checkMemberId("a".repeat(129))).toEqual({ key: "members.idInvalid" });
  });
});

describe("checkTag", () => {
  it("takes 1-64 characters of [a-z0-9_:-]", () => {
    expect(checkTag("vip")).toBeNull();
    expect(checkTag("city:shanghai")).toBeNull();
    expect(checkTag("a_b-c:9")).toBeNull();
    expect(checkTag("x".repeat(64))).toBeNull();
  });

  it("says what is wrong", () => {
    expect(checkTag("")).toEqual({ key: "members.tagRequired" });
    expect(checkTag("x".repeat(65))).toEqual({ key: "members.tagTooLong", params: { max: 64 } });
    expect(checkTag("VIP")).toEqual({ key: "members.tagInvalid" });
    expect(checkTag("big spender")).toEqual({ key: "members.tagInvalid" });
    expect(checkTag("会员")).toEqual({ key: "members.tagInvalid" });
  });
});

describe("grantBody", () => {
  it("grants one member the points with the reason trimmed", () => {
    expect(grantBody("alice", 250, "  event reward ", "grant-1")).toEqual({
      body: { grant_id: "grant-1", reason: "event reward", items: [{ member_id: "alice", points: 250 }] },
    });
  });

  it("refuses points that are not a whole number from 1 to 1e9", () => {
    const refused = { key: "members.pointsInvalid", params: { max: 1_000_000_000 } };
    for (const points of [null, undefined, 0, -5, 1.5, 1_000_000_001, Number.NaN]) {
      expect(grantBody("alice", points, "why", "g")).toEqual(refused);
    }
    expect(isProblem(grantBody("alice", 1_000_000_000, "why", "g"))).toBe(false);
  });

  it("needs a reason of at most 200 characters", () => {
    expect(grantBody("alice", 10, "   ", "g")).toEqual({ key: "members.reasonRequired" });
    expect(grantBody("alice", 10, "r".repeat(201), "g"))
      .toEqual({ key: "members.reasonTooLong", params: { max: 200 } });
  });
});

describe("issueBody", () => {
  it("issues coupons of a perk to the one member", () => {
    expect(issueBody("bob", "tea", 2, "welcome", "issue-9")).toEqual({
      body: { issue_id: "issue-9", reason: "welcome", kind: "coupon", sku: "tea", count: 2,
              member_ids: ["bob"] },
    });
  });

  it("needs a perk, a count from 1 to 100 and a reason", () => {
    expect(issueBody("bob", null, 1, "r", "i")).toEqual({ key: "members.skuRequired" });
    expect(issueBody("bob", "tea", 0, "r", "i"))
      .toEqual({ key: "members.countInvalid", params: { max: 100 } });
    expect(issueBody("bob", "tea", 101, "r", "i"))
      .toEqual({ key: "members.countInvalid", params: { max: 100 } });
    expect(issueBody("bob", "tea", 1, "", "i")).toEqual({ key: "members.reasonRequired" });
  });
});

describe("isBlankBalance", () => {
  const blank: Balance = {
    member_id: "nobody", available: 0, held: 0, lifetime_earned: 0, spent: 0, expired: 0,
    reversed: 0, spend_cents: 0, earn_multiplier: 1, expiring: [],
  };

  it("is the all-zero answer for a member fuli never heard of", () => {
    expect(isBlankBalance(blank)).toBe(true);
  });

  it("is not a member who earned and spent everything", () => {
    expect(isBlankBalance({ ...blank, lifetime_earned: 100, spent: 100 })).toBe(false);
    expect(isBlankBalance({ ...blank, expiring: [{ points: 5, expires_at: "2027-01-01T00:00:00Z" }] }))
      .toBe(false);
  });
});

describe("entries", () => {
  it("shows points with their sign", () => {
    expect(signedPoints(100)).toBe("+100");
    expect(signedPoints(-30)).toBe("-30");
    expect(signedPoints(0)).toBe("0");
  });

  it("colours kinds by the way the points go", () => {
    expect(entryKindType("earn")).toBe("success");
    expect(entryKindType("grant")).toBe("success");
    expect(entryKindType("debit")).toBe("danger");
    expect(entryKindType("capture")).toBe("danger");
    expect(entryKindType("expiry")).toBe("warning");
    expect(entryKindType("hold")).toBe("info");
  });

  it("appends a further page, each item once, in the API's order", () => {
    const key = (item: { id: string }) => item.id;
    expect(appendPage([{ id: "c" }, { id: "b" }], [{ id: "b" }, { id: "a" }], key))
      .toEqual([{ id: "c" }, { id: "b" }, { id: "a" }]);
    expect(appendPage([], [{ id: "x" }], key)).toEqual([{ id: "x" }]);
  });
});

describe("tierProgress", () => {
  const tier = (metrics: Record<string, number>, needed: Record<string, number> | null): MemberTier => ({
    member_id: "alice", tier: "silver", since: null, grace_until: null, metrics,
    next: needed === null ? null : { tier: "gold", needed },
  });

  it("is the figure now over the next tier's minimum (figure now plus what is missing)", () => {
    expect(tierProgress(tier({ points_earned: 130, spend_cents: 5000 },
                             { points_earned: 870, spend_cents: 15000 }))).toEqual([
      { metric: "points_earned", current: 130, target: 1000, needed: 870, percent: 13 },
      { metric: "spend_cents", current: 5000, target: 20000, needed: 15000, percent: 25 },
    ]);
  });

  it("rounds to one decimal and counts a metric the member has no figure for as 0", () => {
    expect(tierProgress(tier({ points_earned: 1 }, { points_earned: 2 }))[0]!.percent).toBe(33.3);
    expect(tierProgress(tier({}, { points_available: 50 }))).toEqual([
      { metric: "points_available", current: 0, target: 50, needed: 50, percent: 0 },
    ]);
  });

  it("is full on a metric already met", () => {
    expect(tierProgress(tier({ points_earned: 2000, spend_cents: 0 },
                             { points_earned: 0, spend_cents: 100 }))).toEqual([
      { metric: "points_earned", current: 2000, target: null, needed: 0, percent: 100 },
      { metric: "spend_cents", current: 0, target: 100, needed: 100, percent: 0 },
    ]);
  });

  it("is nothing without a next tier", () => {
    expect(tierProgress(tier({ points_earned: 5 }, null))).toEqual([]);
  });
});
