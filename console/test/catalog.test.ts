import { describe, expect, it } from "vitest";

import {
  fitVerdict, formatP, initialWeights, invalidWeights, oddsFit, previewOdds, smallExpectations,
  weightsChanged, withWeights, type BoxDefinition,
} from "../src/lib/catalog";
import { observedOption, oddsPieOption } from "../src/lib/charts/catalog";

const label = (key: string) => key;

type PieSeries = { type: string; data: { id: string; name: string; value: number }[] };
type BarSeries = { name: string; type: string; data: number[] };

const definition: BoxDefinition = {
  name: "Lucky box", cost_points: 20, enabled: true,
  pity: { after_draws: 10, prize_ids: ["big"] },
  prizes: [
    { prize_id: "big", name: "100 points", kind: "points", points: 100, weight: 1, stock: 10 },
    { prize_id: "small", name: "10 points", kind: "points", points: 10, weight: 9, stock: null },
    { prize_id: "none", name: "Thank you", kind: "nothing", weight: 90 },
  ],
};

describe("oddsPieOption", () => {
  it("has one slice per prize whose value is the API's probability exactly", () => {
    const prizes = [
      { prize_id: "big", name: "100 points", probability: 0.01 },
      { prize_id: "small", name: "10 points", probability: 0.09 },
      { prize_id: "none", name: "Thank you", probability: 0.9 },
      { prize_id: "gone", name: "Sold out", probability: 0 },
    ];
    const series = oddsPieOption(prizes, label).series as PieSeries[];
    expect(series).toHaveLength(1);
    expect(series[0]!.type).toBe("pie");
    expect(series[0]!.data).toEqual([
      { id: "big", name: "100 points", value: 0.01 },
      { id: "small", name: "10 points", value: 0.09 },
      { id: "none", name: "Thank you", value: 0.9 },
      { id: "gone", name: "Sold out", value: 0 },
    ]);
  });
});

describe("observedOption", () => {
  it("draws observed and expected counts per prize", () => {
    const option = observedOption([
      { prize_id: "big", name: "100 points", observed: 3, expected: 1.5 },
      { prize_id: "small", name: "10 points", observed: 12, expected: 13.5 },
      { prize_id: "none", name: "Thank you", observed: 135, expected: 135 },
    ], label);
    const series = option.series as BarSeries[];
    expect(series.map((s) => [s.name, s.type, s.data])).toEqual([
      ["catalog.observed", "bar", [3, 12, 135]],
      ["catalog.expected", "bar", [1.5, 13.5, 135]],
    ]);
    expect((option.xAxis as { data: string[] }).data)
      .toEqual(["100 points", "10 points", "Thank you"]);
  });
});

describe("box editor weights", () => {
  it("start from the definition's weights", () => {
    expect(initialWeights(definition)).toEqual({ big: 1, small: 9, none: 90 });
  });

  it("preview the odds the edited weights give, at once", () => {
    const untouched = previewOdds(definition.prizes, initialWeights(definition));
    expect(untouched.map((p) => p.probability)).toEqual([1 / 100, 9 / 100, 90 / 100]);
    const edited = previewOdds(definition.prizes, { big: 5, small: 15, none: 30 });
    expect(edited).toEqual([
      { prize_id: "big", name: "100 points", probability: 0.1 },
      { prize_id: "small", name: "10 points", probability: 0.3 },
      { prize_id: "none", name: "Thank you", probability: 0.6 },
    ]);
    // A weight being typed (empty input) keeps the definition's until a number is there.
    expect(previewOdds(definition.prizes, { big: Number.NaN, small: 9, none: 40 })
      .map((p) => p.probability)).toEqual([1 / 50, 9 / 50, 40 / 50]);
  });

  it("leave out a prize with no stock left, as the draw does", () => {
    const prizes = [{ ...definition.prizes[0]!, stock: 0 }, ...definition.prizes.slice(1)];
    expect(previewOdds(prizes, { big: 1, small: 1, none: 3 }).map((p) => p.probability))
      .toEqual([0, 0.25, 0.75]);
  });

  it("make the PUT body with only the weights changed", () => {
    const body = withWeights(definition, { big: 2, small: 9, none: 89 });
    expect(body).toEqual({
      ...definition,
      prizes: [
        { ...definition.prizes[0]!, weight: 2 },
        { ...definition.prizes[1]!, weight: 9 },
        { ...definition.prizes[2]!, weight: 89 },
      ],
    });
    expect(definition.prizes[0]!.weight).toBe(1);
  });

  it("know when they changed and which the API would refuse", () => {
    expect(weightsChanged(definition, initialWeights(definition))).toBe(false);
    expect(weightsChanged(definition, { big: 2 })).toBe(true);
    expect(invalidWeights(definition.prizes, { big: 0, small: 1.5, none: 1_000_000_001 }))
      .toEqual(["big", "small", "none"]);
    expect(invalidWeights(definition.prizes, { big: 1, small: 1_000_000_000 })).toEqual([]);
  });
});

describe("oddsFit", () => {
  it("tests the draws against the published odds", () => {
    // 150 draws at 1 % / 9 % / 90 %: (3-1.5)^2/1.5 + (12-13.5)^2/13.5 + 0 = 1.5 + 0.1667
    const stats = { draws: 150, prizes: [
      { observed: 3, expected: 1.5 }, { observed: 12, expected: 13.5 },
      { observed: 135, expected: 135 }] };
    const test = oddsFit(stats)!;
    expect(test.statistic).toBeCloseTo(1.5 + 1 / 6, 12);
    expect(test.degreesOfFreedom).toBe(2);
    expect(test.pValue).toBeCloseTo(Math.exp(-(1.5 + 1 / 6) / 2), 12);
    expect(fitVerdict(test)).toBe("consistent");
    expect(smallExpectations(stats)).toBe(true);
  });

  it("says when there is nothing to test yet, and when chance rarely deviates so far", () => {
    const none = oddsFit({ draws: 0, prizes: [{ observed: 0, expected: 0 },
                                              { observed: 0, expected: 0 }] });
    expect(none).toBeNull();
    expect(fitVerdict(none)).toBe("insufficient");
    // 100 draws expected 50/50, observed 80/20: statistic 36, df 1, p far below 0.05.
    const skewed = oddsFit({ draws: 100, prizes: [{ observed: 80, expected: 50 },
                                                  { observed: 20, expected: 50 }] })!;
    expect(skewed.statistic).toBe(36);
    expect(fitVerdict(skewed)).toBe("suspicious");
    expect(smallExpectations({ draws: 100, prizes: [{ observed: 80, expected: 50 }] })).toBe(false);
  });
});

describe("formatP", () => {
  it("shows four decimals, and a bound below them", () => {
    expect(formatP(1)).toBe("1.0000");
    expect(formatP(0.04321)).toBe("0.0432");
    expect(formatP(0.0001)).toBe("0.0001");
    expect(formatP(0.00009)).toBe("< 0.0001");
    expect(formatP(0)).toBe("< 0.0001");
  });
});
