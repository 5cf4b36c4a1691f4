import { describe, expect, it } from "vitest";

import { chiSquareTest, logGamma, probabilities, upperGammaQ } from "../src/lib/odds";

describe("probabilities", () => {
  it("are each weight's share of the total", () => {
    const shares = probabilities([
      { prize_id: "a", name: "A", weight: 1 },
      { prize_id: "b", name: "B", weight: 3 },
      { prize_id: "c", name: "C", weight: 6 },
    ]);
    expect(shares).toEqual([0.1, 0.3, 0.6]);
  });

  it("are all zero when no prize has weight", () => {
    expect(probabilities([{ prize_id: "a", name: "A", weight: 0 }])).toEqual([0]);
  });
});

describe("logGamma", () => {
  it("matches factorials", () => {
    expect(logGamma(1)).toBeCloseTo(0, 12);
    expect(logGamma(5)).toBeCloseTo(Math.log(24), 12);
    expect(logGamma(0.5)).toBeCloseTo(Math.log(Math.sqrt(Math.PI)), 12);
  });
});

describe("upperGammaQ", () => {
  it("is exp(-x) for s = 1", () => {
    for (const x of [0.1, 1, 2.5, 10]) expect(upperGammaQ(1, x)).toBeCloseTo(Math.exp(-x), 12);
  });

  it("gives the chi-square survival function's textbook values", () => {
    // Critical values at the 5 % level: df 1 -> 3.841, df 2 -> 5.991, df 10 -> 18.307.
    expect(upperGammaQ(0.5, 3.841458820694124 / 2)).toBeCloseTo(0.05, 9);
    expect(upperGammaQ(1, 5.991464547107979 / 2)).toBeCloseTo(0.05, 9);
    expect(upperGammaQ(5, 18.307038053275146 / 2)).toBeCloseTo(0.05, 9);
  });
});

describe("chiSquareTest", () => {
  it("gives p = 1 when the counts are exactly those expected", () => {
    const test = chiSquareTest([10, 30, 60], [10, 30, 60]);
    expect(test).toEqual({ statistic: 0, degreesOfFreedom: 2, pValue: 1 });
  });

  it("computes Pearson's statistic and its p-value", () => {
    // (12-10)^2/10 + (25-30)^2/30 + (63-60)^2/60 = 0.4 + 0.8333 + 0.15
    const test = chiSquareTest([12, 25, 63], [10, 30, 60])!;
    expect(test.statistic).toBeCloseTo(1.3833333333, 9);
    expect(test.degreesOfFreedom).toBe(2);
    expect(test.pValue).toBeCloseTo(Math.exp(-1.3833333333 / 2), 9);
  });

  it("gives p = 0 when a prize that cannot be drawn was drawn", () => {
    expect(chiSquareTest([5, 5, 1], [5, 6, 0])!.pValue).toBe(0);
  });

  it("has nothing to say without draws or with one possible prize", () => {
    expect(chiSquareTest([0, 0], [0, 0])).toBeNull();
    expect(chiSquareTest([7, 0], [7, 0])).toBeNull();
  });
});
