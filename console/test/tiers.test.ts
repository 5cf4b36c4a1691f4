import { describe, expect, it } from "vitest";

import { distributionOption } from "../src/lib/charts/tiers";
import {
  blankPolicyForm, blankTier, checkPolicy, cutRows, type Distribution, formToPolicy, moveTier,
  type PolicyForm, policyToForm,
} from "../src/lib/tiers";

const label = (key: string) => key;

const threshold = {
  mode: "threshold" as const, window_days: 365, grace_days: 7,
  tiers: [
    { name: "member" },
    { name: "silver", min: { points_earned: 100 }, match: "all" as const },
    { name: "gold", min: { points_earned: 1000, spend_cents: 50000 }, match: "any" as const,
      benefits: { earn_multiplier: 1.5 } },
  ],
};

const percentile = {
  mode: "percentile" as const, metric: "spend_cents" as const, window_days: null, grace_days: 0,
  tiers: [{ name: "bronze", share: 0.5 }, { name: "silver", share: 0.3 },
          { name: "gold", share: 0.2, benefits: { earn_multiplier: 2 } }],
};

describe("policy form", () => {
  it("turns a threshold policy into rows and back into the same policy", () => {
    const form = policyToForm({ ...threshold, reevaluation: null });
    expect(form.tiers[2]).toEqual({
      name: "gold", share: null, spend_cents: 50000, points_earned: 1000, points_available: null,
      match: "any", earn_multiplier: 1.5,
    });
    expect(checkPolicy(form)).toEqual([]);
    expect(formToPolicy(form)).toEqual(threshold);
  });

  it("turns a percentile policy into rows and back into the same policy", () => {
    const form = policyToForm(percentile);
    expect(form.tiers.map((row) => row.share)).toEqual([0.5, 0.3, 0.2]);
    expect(checkPolicy(form)).toEqual([]);
    expect(formToPolicy(form)).toEqual(percentile);
  });

  it("starts a new policy with one tier and no minimum", () => {
    const form = blankPolicyForm();
    expect(checkPolicy(form)).toEqual([]);
    expect(formToPolicy(form)).toEqual({
      mode: "threshold", window_days: null, grace_days: 0, tiers: [{ name: "member" }],
    });
  });
});

describe("checkPolicy", () => {
  const form = (change: Partial<PolicyForm>): PolicyForm => ({ ...policyToForm(threshold), ...change });

  it("refuses shares that do not add up to 1", () => {
    const rows = policyToForm(percentile).tiers.map((row, i) => ({ ...row, share: [0.5, 0.3, 0.1][i]! }));
    expect(checkPolicy({ ...policyToForm(percentile), tiers: rows }))
      .toEqual([{ key: "tiers.editor.sharesSum", params: { total: 0.9 } }]);
  });

  it("takes shares whose sum is 1 up to rounding", () => {
    const rows = [0.1, 0.2, 0.7].map((share, i) => ({ ...blankTier(`t${i}`), share }));
    expect(checkPolicy({ ...policyToForm(percentile), tiers: rows })).toEqual([]);
  });

  it("refuses a missing or out-of-range share", () => {
    const rows = [{ ...blankTier("a"), share: null }, { ...blankTier("b"), share: 1.5 }];
    expect(checkPolicy({ ...policyToForm(percentile), tiers: rows })).toEqual([
      { key: "tiers.editor.shareInvalid", params: { n: 1 } },
      { key: "tiers.editor.shareInvalid", params: { n: 2 } },
    ]);
  });

  it("refuses bad and repeated names", () => {
    const tiers = [blankTier("member"), { ...blankTier("member"), points_earned: 1 },
                   { ...blankTier("gold star"), points_earned: 2 }, { ...blankTier(""), points_earned: 3 }];
    expect(checkPolicy(form({ tiers }))).toEqual([
      { key: "tiers.editor.nameTwice", params: { n: 2 } },
      { key: "tiers.editor.nameInvalid", params: { n: 3 } },
      { key: "tiers.editor.nameInvalid", params: { n: 4 } },
    ]);
  });

  it("needs a minimum on every tier above the first, none below the tier under it", () => {
    const tiers = [blankTier("a"), blankTier("b"), { ...blankTier("c"), points_earned: 500 },
                   { ...blankTier("d"), points_earned: 400 }];
    expect(checkPolicy(form({ tiers }))).toEqual([
      { key: "tiers.editor.minimumNeeded", params: { n: 2 } },
      { key: "tiers.editor.minimumBelow", params: { n: 4, metric: "points_earned" } },
    ]);
  });

  it("checks the window, the grace, the multipliers and the number of tiers", () => {
    expect(checkPolicy(form({ window_days: 0, grace_days: -1 }))).toEqual([
      { key: "tiers.editor.windowInvalid", params: { max: 3650 } },
      { key: "tiers.editor.graceInvalid", params: { max: 3650 } },
    ]);
    expect(checkPolicy(form({ tiers: [{ ...blankTier("a"), earn_multiplier: 0 }] })))
      .toEqual([{ key: "tiers.editor.multiplierInvalid", params: { n: 1 } }]);
    expect(checkPolicy(form({ tiers: [] }))).toEqual([{ key: "tiers.editor.noTiers" }]);
    const many = Array.from({ length: 21 }, (_, i) => ({ ...blankTier(`t${i}`), points_earned: i }));
    expect(checkPolicy(form({ tiers: many })))
      .toEqual([{ key: "tiers.editor.tooManyTiers", params: { max: 20 } }]);
  });

  it("refuses a minimum that is not a whole number", () => {
    expect(checkPolicy(form({ tiers: [blankTier("a"), { ...blankTier("b"), spend_cents: 1.5 }] })))
      .toEqual([{ key: "tiers.editor.minimumInvalid", params: { n: 2, metric: "spend_cents" } }]);
  });
});

describe("moveTier", () => {
  const rows = [blankTier("a"), blankTier("b"), blankTier("c")];

  it("swaps a row with its neighbour", () => {
    expect(moveTier(rows, 1, -1).map((row) => row.name)).toEqual(["b", "a", "c"]);
    expect(moveTier(rows, 1, 1).map((row) => row.name)).toEqual(["a", "c", "b"]);
  });

  it("leaves the ladder as it was at its ends", () => {
    expect(moveTier(rows, 0, -1).map((row) => row.name)).toEqual(["a", "b", "c"]);
    expect(moveTier(rows, 2, 1).map((row) => row.name)).toEqual(["a", "b", "c"]);
  });
});

describe("the distribution", () => {
  const distribution: Distribution = {
    members: 10, evaluated_at: "2026-12-06T16:00:00Z",
    tiers: [{ tier: "bronze", members: 5, share: 0.5 }, { tier: "silver", members: 3, share: 0.3 },
            { tier: "gold", members: 2, share: 0.2 }],
    cut_lines: [{ tier: "gold", members: 2, from_value: 900 }, { tier: "bronze", members: 5, from_value: 0 },
                { tier: "silver", members: 3, from_value: 120.5 }, { tier: "old", members: 0, from_value: null }],
  };

  it("lists the cut lines in the ladder's order, tiers no longer in it last", () => {
    expect(cutRows(distribution).map((row) => [row.tier, row.from_value, row.members])).toEqual([
      ["bronze", 0, 5], ["silver", 120.5, 3], ["gold", 900, 2], ["old", null, 0],
    ]);
  });

  it("draws exactly the members of each tier, cut lines under the names", () => {
    const option = distributionOption(distribution.tiers, distribution.cut_lines, label);
    expect((option.series as { data: number[] }[])[0]!.data).toEqual([5, 3, 2]);
    expect((option.xAxis as { data: string[] }).data)
      .toEqual(["bronze\n≥ 0", "silver\n≥ 120.5", "gold\n≥ 900"]);
  });
});
