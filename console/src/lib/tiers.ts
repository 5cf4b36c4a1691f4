/** The Tiers page's own logic: the tier policy as an editable form and back, checked as the API
 * checks it, and the cut lines as a table (no I/O here). */
import type { TiersSchemas } from "@fuli/client";

export type Policy = TiersSchemas["ThresholdPolicy"] | TiersSchemas["PercentilePolicy"];
export type PolicyView = TiersSchemas["ThresholdPolicyView"] | TiersSchemas["PercentilePolicyView"];
export type Distribution = TiersSchemas["Distribution"];
export type Metric = TiersSchemas["PercentilePolicy"]["metric"];

export const METRICS: readonly Metric[] = ["points_earned", "points_available", "spend_cents"];
/** proto.tiers.TierName */
export const TIER_NAME = /^[A-Za-z0-9._-]{1,64}$/;
export const MAX_TIERS = 20;
const MAX_AMOUNT = 10 ** 15;
const MAX_DAYS = 3650;

/** One rung of the ladder as the form edits it; unset numbers are null. */
export interface TierRow {
  name: string;
  /** percentile mode: the share of members, (0, 1] */
  share: number | null;
  /** threshold mode: the minimums and whether all or any of them must be met */
  spend_cents: number | null;
  points_earned: number | null;
  points_available: number | null;
  match: "all" | "any";
  earn_multiplier: number | null;
}

export interface PolicyForm {
  mode: "threshold" | "percentile";
  metric: Metric;
  /** null: all time */
  window_days: number | null;
  grace_days: number;
  tiers: TierRow[];
}

export interface Problem { key: string; params?: Record<string, unknown> }

export function blankTier(name = ""): TierRow {
  return { name, share: null, spend_cents: null, points_earned: null, points_available: null,
           match: "all", earn_multiplier: null };
}

/** The form of a new policy: one tier. */
export function blankPolicyForm(): PolicyForm {
  return { mode: "threshold", metric: "points_earned", window_days: null, grace_days: 0,
           tiers: [blankTier("member")] };
}

/** The policy `GET /tiers/v1/policy` answered, as a form (its re-evaluation left out). */
export function policyToForm(policy: Policy | PolicyView): PolicyForm {
  const common = { window_days: policy.window_days ?? null, grace_days: policy.grace_days ?? 0 };
  if (policy.mode === "percentile") {
    return {
      mode: "percentile", metric: policy.metric, ...common,
      tiers: policy.tiers.map((tier) => ({
        ...blankTier(tier.name), share: tier.share,
        earn_multiplier: tier.benefits?.earn_multiplier ?? null,
      })),
    };
  }
  return {
    mode: "threshold", metric: "points_earned", ...common,
    tiers: policy.tiers.map((tier) => ({
      ...blankTier(tier.name),
      spend_cents: tier.min?.spend_cents ?? null,
      points_earned: tier.min?.points_earned ?? null,
      points_available: tier.min?.points_available ?? null,
      match: tier.match ?? "all",
      earn_multiplier: tier.benefits?.earn_multiplier ?? null,
    })),
  };
}

function wholeIn(value: number | null, low: number, high: number): boolean {
  return value === null || (Number.isInteger(value) && value >= low && value <= high);
}

/** The minimums a threshold row sets, in the order of METRICS. */
export function minimumsOf(row: TierRow): Partial<Record<Metric, number>> {
  const out: Partial<Record<Metric, number>> = {};
  for (const metric of METRICS) {
    const value = row[metric];
    if (value !== null) out[metric] = value;
  }
  return out;
}

/** What is wrong with the form, as the API would refuse it (empty: nothing). Row numbers in
 * the messages count from 1. */
export function checkPolicy(form: PolicyForm): Problem[] {
  const problems: Problem[] = [];
  if (form.tiers.length === 0) problems.push({ key: "tiers.editor.noTiers" });
  if (form.tiers.length > MAX_TIERS) {
    problems.push({ key: "tiers.editor.tooManyTiers", params: { max: MAX_TIERS } });
  }
  if (!wholeIn(form.window_days, 1, MAX_DAYS)) {
    problems.push({ key: "tiers.editor.windowInvalid", params: { max: MAX_DAYS } });
  }
  if (!wholeIn(form.grace_days, 0, MAX_DAYS)) {
    problems.push({ key: "tiers.editor.graceInvalid", params: { max: MAX_DAYS } });
  }
  const names = new Set<string>();
  form.tiers.forEach((row, index) => {
    const n = index + 1;
    if (!TIER_NAME.test(row.name)) problems.push({ key: "tiers.editor.nameInvalid", params: { n } });
    else if (names.has(row.name)) problems.push({ key: "tiers.editor.nameTwice", params: { n } });
    names.add(row.name);
    if (row.earn_multiplier !== null && !(row.earn_multiplier > 0 && row.earn_multiplier <= 100)) {
      problems.push({ key: "tiers.editor.multiplierInvalid", params: { n } });
    }
    if (form.mode === "percentile") {
      if (row.share === null || !(row.share > 0 && row.share <= 1)) {
        problems.push({ key: "tiers.editor.shareInvalid", params: { n } });
      }
    } else {
      for (const metric of METRICS) {
        if (!wholeIn(row[metric], 0, MAX_AMOUNT)) {
          problems.push({ key: "tiers.editor.minimumInvalid", params: { n, metric } });
        }
      }
    }
  });
  if (form.mode === "percentile" && form.tiers.every((row) => row.share !== null)) {
    const total = form.tiers.reduce((sum, row) => sum + (row.share ?? 0), 0);
    if (Math.abs(total - 1) > 1e-9) {
      problems.push({ key: "tiers.editor.sharesSum", params: { total: Number(total.toFixed(6)) } });
    }
  }
  if (form.mode === "threshold") {
    const floors: Partial<Record<Metric, number>> = {};
    form.tiers.forEach((row, index) => {
      const minimums = minimumsOf(row);
      if (index > 0 && Object.keys(minimums).length === 0) {
        problems.push({ key: "tiers.editor.minimumNeeded", params: { n: index + 1 } });
      }
      for (const [metric, value] of Object.entries(minimums) as [Metric, number][]) {
        if (value < (floors[metric] ?? 0)) {
          problems.push({ key: "tiers.editor.minimumBelow", params: { n: index + 1, metric } });
        }
        floors[metric] = value;
      }
    });
  }
  return problems;
}

/** The body of `PUT /tiers/v1/policy` the form describes (check it first). */
export function formToPolicy(form: PolicyForm): Policy {
  const common = { window_days: form.window_days, grace_days: form.grace_days };
  const benefits = (row: TierRow) =>
    row.earn_multiplier === null ? {} : { benefits: { earn_multiplier: row.earn_multiplier } };
  if (form.mode === "percentile") {
    return {
      mode: "percentile", metric: form.metric, ...common,
      tiers: form.tiers.map((row) => ({ name: row.name, share: row.share ?? 0, ...benefits(row) })),
    };
  }
  return {
    mode: "threshold", ...common,
    tiers: form.tiers.map((row) => {
      const minimums = minimumsOf(row);
      return {
        name: row.name,
        ...(Object.keys(minimums).length > 0 ? { min: minimums, match: row.match } : {}),
        ...benefits(row),
      };
    }),
  };
}

/** Moves a row of the ladder one place up (-1) or down (+1); the rows as they were when it
 * cannot move. */
export function moveTier(rows: readonly TierRow[], index: number, by: -1 | 1): TierRow[] {
  const target = index + by;
  if (index < 0 || index >= rows.length || target < 0 || target >= rows.length) return [...rows];
  const moved = [...rows];
  [moved[index], moved[target]] = [moved[target]!, moved[index]!];
  return moved;
}

export interface CutRow { tier: string; from_value: number | null; members: number }

/** The cut lines of the last stratification in the order of the ladder the distribution
 * lists, then any tier the ladder no longer has. */
export function cutRows(distribution: Distribution): CutRow[] {
  const order = new Map(distribution.tiers.map((share, index) => [share.tier, index]));
  return [...distribution.cut_lines]
    .sort((a, b) => (order.get(a.tier) ?? Infinity) - (order.get(b.tier) ?? Infinity))
    .map((cut) => ({ tier: cut.tier, from_value: cut.from_value, members: cut.members }));
}
