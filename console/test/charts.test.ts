import { describe, expect, it } from "vitest";

import { dailyPointsOption, hourlyEventsOption } from "../src/lib/charts/overview";
import { distributionOption } from "../src/lib/charts/tiers";

const label = (key: string) => key;

type Series = { name: string; data: number[]; stack?: string; yAxisIndex?: number };

describe("dailyPointsOption", () => {
  const days = [
    { day: "2026-12-05", issued: 100, spent: 30, expired: 5, reversed: 0, balance: 65 },
    { day: "2026-12-06", issued: 10, spent: 0, expired: 0, reversed: 2, balance: 73 },
  ];

  it("stacks issued above the axis, spent, expired and reversed below, the balance on its own axis", () => {
    const series = dailyPointsOption(days, label).series as Series[];
    expect(series.map((s) => [s.name, s.data])).toEqual([
      ["overview.issued", [100, 10]],
      ["overview.spent", [-30, -0]],
      ["overview.expired", [-5, -0]],
      ["overview.reversed", [-0, -2]],
      ["overview.balance", [65, 73]],
    ]);
    expect(series.slice(0, 4).every((s) => s.stack === "flow")).toBe(true);
    expect(series[4]!.yAxisIndex).toBe(1);
  });

  it("labels each day by month and day", () => {
    const xAxis = dailyPointsOption(days, label).xAxis as { data: string[] };
    expect(xAxis.data).toEqual(["12-05", "12-06"]);
  });
});

describe("hourlyEventsOption", () => {
  it("puts each hour on the tenant's clock", () => {
    const option = hourlyEventsOption([{ hour: "2026-12-06T15:00:00Z", events: 4, points: 40 },
                                       { hour: "2026-12-06T16:00:00Z", events: 0, points: 0 }],
                                      "Asia/Shanghai", label);
    expect((option.xAxis as { data: string[] }).data).toEqual(["12-06 23:00", "12-07 00:00"]);
    expect((option.series as Series[])[0]!.data).toEqual([4, 0]);
  });
});

describe("distributionOption", () => {
  it("draws members per tier with each tier's cut line under its name", () => {
    const option = distributionOption(
      [{ tier: "bronze", members: 70, share: 0.7 }, { tier: "gold", members: 30, share: 0.3 }],
      [{ tier: "gold", members: 30, from_value: 812.456 }], label);
    expect((option.xAxis as { data: string[] }).data).toEqual(["bronze", "gold\n≥ 812.46"]);
    expect((option.series as Series[])[0]!.data).toEqual([70, 30]);
  });
});
