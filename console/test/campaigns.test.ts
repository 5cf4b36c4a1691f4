import { afterEach, describe, expect, it, vi } from "vitest";

import {
  leftColor, packetsLeft, percentLeft, pointsLeft, refreshWhileVisible, settled, type Visibility,
} from "../src/lib/campaigns";
import { leaderboardOption, teamLabel } from "../src/lib/charts/campaigns";

const label = (key: string) => key;
const money = (cents: number) => `¥${(cents / 100).toFixed(2)}`;

describe("leaderboardOption", () => {
  const rows = [
    { rank: 1, team_id: "t-9", name: "Bob's team", score: 123456, members: 2 },
    { rank: 2, team_id: "t-3", name: null, score: 5000, members: 5 },
    { rank: 3, team_id: "t-4", name: "Tie", score: 5000, members: 2 },
  ];

  it("has one bar per team whose value is the answer's score", () => {
    const option = leaderboardOption(rows, label, money);
    const series = option.series as { type: string; data: number[] }[];
    expect(series).toHaveLength(1);
    expect(series[0]!.type).toBe("bar");
    expect(series[0]!.data).toEqual([123456, 5000, 5000]);
  });

  it("names each bar by rank and team, first rank on top", () => {
    const yAxis = leaderboardOption(rows, label, money).yAxis as { data: string[]; inverse: boolean };
    expect(yAxis.data).toEqual(["#1 Bob's team", "#2 t-3", "#3 Tie"]);
    expect(yAxis.inverse).toBe(true);
    expect(teamLabel(rows[1]!)).toBe("#2 t-3");
  });

  it("is empty for an empty board", () => {
    const series = leaderboardOption([], label, money).series as { data: number[] }[];
    expect(series[0]!.data).toEqual([]);
  });
});

describe("pool figures", () => {
  it("give the share left in percent", () => {
    const pool = { packets: 10, remaining_packets: 3, total_points: 1000, remaining_points: 275 };
    expect(packetsLeft(pool)).toBe(30);
    expect(pointsLeft(pool)).toBe(27.5);
    expect(percentLeft(1, 3)).toBe(33.3);
    expect(percentLeft(0, 0)).toBe(0);
    expect(percentLeft(5, 4)).toBe(100);
  });

  it("colour the bar by what is left", () => {
    expect(leftColor(0)).toBe("#f56c6c");
    expect(leftColor(19.9)).toBe("#e6a23c");
    expect(leftColor(20)).toBe("#67c23a");
  });
});

describe("results", () => {
  it("are final once the campaign is settled", () => {
    expect(settled({ state: "settled" })).toBe(true);
    expect(settled({ state: "open" })).toBe(false);
    expect(settled({ state: "settling" })).toBe(false);
  });
});

describe("refreshWhileVisible", () => {
  afterEach(() => vi.useRealTimers());

  function fakePage(state: string) {
    const listeners = new Set<() => void>();
    const page: Visibility & { set(state: string): void; listeners: Set<() => void> } = {
      visibilityState: state,
      addEventListener: (_type, listener) => listeners.add(listener),
      removeEventListener: (_type, listener) => listeners.delete(listener),
      set(next) {
        this.visibilityState = next;
        for (const listener of listeners) listener();
      },
      listeners,
    };
    return page;
  }

  it("ticks every period while visible, not while hidden, at once on return, never after stop", () => {
    vi.useFakeTimers();
    const page = fakePage("visible");
    const tick = vi.fn();
    const stop = refreshWhileVisible(tick, 5000, page);
    vi.advanceTimersByTime(4999);
    expect(tick).toHaveBeenCalledTimes(0);
    vi.advanceTimersByTime(1);
    expect(tick).toHaveBeenCalledTimes(1);
    vi.advanceTimersByTime(10000);
    expect(tick).toHaveBeenCalledTimes(3);
    page.set("hidden");
    vi.advanceTimersByTime(20000);
    expect(tick).toHaveBeenCalledTimes(3);
    page.set("visible");
    expect(tick).toHaveBeenCalledTimes(4);
    stop();
    expect(page.listeners.size).toBe(0);
    vi.advanceTimersByTime(20000);
    expect(tick).toHaveBeenCalledTimes(4);
  });
});
