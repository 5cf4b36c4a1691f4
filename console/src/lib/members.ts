/** The Members page's own logic: what an operator types checked before it is sent, the bodies
 * of the operator's writes, and figures derived from one API answer (no I/O here). */
import type { PointsSchemas, RewardsSchemas, TiersSchemas } from "@fuli/client";

export type Balance = PointsSchemas["Member"];
export type Entry = PointsSchemas["Entry"];
export type MemberTier = TiersSchemas["MemberTier"];
export type GrantIn = PointsSchemas["GrantIn"];
export type IssueIn = RewardsSchemas["IssueIn"];

/** A problem with what was typed: an i18n key of the members page and its parameters. */
export interface Problem { key: string; params?: Record<string, unknown> }

/** fuli's ids: 1-128 characters of [A-Za-z0-9._:-] (proto.common.Id). */
export const ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;
/** A member tag: 1-64 characters of [a-z0-9_:-] (proto.tiers.Tag). */
export const TAG_PATTERN = /^[a-z0-9_:-]{1,64}$/;
/** The most points one grant item may carry (proto.common.Points). */
export const MAX_POINTS = 1_000_000_000;
/** The most coupons of one issue per member (proto.rewards.IssueIn.count). */
export const MAX_ISSUE_COUNT = 100;
const MAX_REASON = 200;

/** The member id searched for, trimmed, or the problem with it. */
export function checkMemberId(text: string): { id: string } | Problem {
  const id = text.trim();
  if (id === "") return { key: "members.idRequired" };
  if (!ID_PATTERN.test(id)) return { key: "members.idInvalid" };
  return { id };
}

/** The problem with a tag as typed, or null when fuli will take it. */
export function checkTag(tag: string): Problem | null {
  if (tag === "") return { key: "members.tagRequired" };
  if (tag.length > 64) return { key: "members.tagTooLong", params: { max: 64 } };
  if (!TAG_PATTERN.test(tag)) return { key: "members.tagInvalid" };
  return null;
}

function checkReason(reason: string): Problem | null {
  const text = reason.trim();
  if (text === "") return { key: "members.reasonRequired" };
  if (text.length > MAX_REASON) return { key: "members.reasonTooLong", params: { max: MAX_REASON } };
  return null;
}

function isWhole(value: number | null | undefined, low: number, high: number): value is number {
  return value != null && Number.isInteger(value) && value >= low && value <= high;
}

/** The body of `POST /points/v1/grants` giving one member `points`, or the problem with the
 * form. `grantId` is made once per intended grant (retries reuse it). */
export function grantBody(memberId: string, points: number | null | undefined, reason: string,
                          grantId: string): { body: GrantIn } | Problem {
  if (!isWhole(points, 1, MAX_POINTS)) {
    return { key: "members.pointsInvalid", params: { max: MAX_POINTS } };
  }
  const problem = checkReason(reason);
  if (problem) return problem;
  return { body: { grant_id: grantId, reason: reason.trim(), items: [{ member_id: memberId, points }] } };
}

/** The body of `POST /rewards/v1/issues` giving one member `count` coupons of `sku`, or the
 * problem with the form. */
export function issueBody(memberId: string, sku: string | null | undefined,
                          count: number | null | undefined, reason: string,
                          issueId: string): { body: IssueIn } | Problem {
  if (!sku) return { key: "members.skuRequired" };
  if (!isWhole(count, 1, MAX_ISSUE_COUNT)) {
    return { key: "members.countInvalid", params: { max: MAX_ISSUE_COUNT } };
  }
  const problem = checkReason(reason);
  if (problem) return problem;
  return { body: { issue_id: issueId, reason: reason.trim(), kind: "coupon", sku, count,
                   member_ids: [memberId] } };
}

export function isProblem(value: object): value is Problem {
  return "key" in value;
}

/** A balance with nothing in it: the answer fuli gives for a member it has never heard of. */
export function isBlankBalance(balance: Balance): boolean {
  return balance.available === 0 && balance.held === 0 && balance.lifetime_earned === 0
    && balance.spent === 0 && balance.expired === 0 && balance.reversed === 0
    && balance.spend_cents === 0 && balance.expiring.length === 0;
}

/** Points with their sign, as a ledger shows them ("+100", "-30", "0"). */
export function signedPoints(points: number): string {
  return points > 0 ? `+${points}` : String(points);
}

/** The Element Plus tag colour of an entry's kind: money in green, money out red. */
export function entryKindType(kind: Entry["kind"]): "success" | "danger" | "warning" | "info" {
  switch (kind) {
    case "earn": case "grant": case "refund": case "void":
      return "success";
    case "capture": case "debit": case "reversal":
      return "danger";
    case "expiry":
      return "warning";
    default:
      return "info";
  }
}

/** A further page of a list appended to what is shown, each item once (by `key`), in the
 * order the API gave them. */
export function appendPage<T>(shown: readonly T[], page: readonly T[],
                              key: (item: T) => string): T[] {
  const seen = new Set(shown.map(key));
  return [...shown, ...page.filter((item) => !seen.has(key(item)))];
}

export interface MetricProgress {
  metric: string;
  /** The member's figure now. */
  current: number;
  /** The next tier's minimum: the figure now plus what is still needed (null when nothing is
   * missing, so the minimum is not in the answer). */
  target: number | null;
  needed: number;
  /** Percent of the way, 0-100, one decimal. */
  percent: number;
}

/** How far a member is towards the next tier, per metric the next tier sets a minimum on,
 * from `GET /tiers/v1/members/{id}/tier` alone: its `metrics` and `next.needed`. */
export function tierProgress(tier: MemberTier): MetricProgress[] {
  if (tier.next == null) return [];
  return Object.entries(tier.next.needed).sort(([a], [b]) => a.localeCompare(b))
    .map(([metric, needed]) => {
      const current = tier.metrics[metric] ?? 0;
      if (needed <= 0) return { metric, current, target: null, needed: 0, percent: 100 };
      const target = current + needed;
      const percent = Math.min(100, Math.max(0, Math.round((current / target) * 1000) / 10));
      return { metric, current, target, needed, percent };
    });
}
