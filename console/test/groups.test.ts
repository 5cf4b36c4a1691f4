import { describe, expect, it } from "vitest";

import { groupTrendOption } from "../src/lib/charts/groups";
import {
  addDays, emptyGroupFilters, emptyGroupForm, groupBody, groupFormProblems, groupListQuery,
  groupToForm, inviteTag, migrationRows, mondayOf, trendWindow,
} from "../src/lib/groups";

const label = (key: string) => key;
type Series = { name: string; type: string; data: number[]; yAxisIndex?: number };

describe("inviteTag", () => {
  it("lower-cases the group id", () => {
    expect(inviteTag("Grid-7")).toBe("invite:grid-7");
  });

  it("replaces characters outside [a-z0-9_:-] by '-' and keeps _ : -", () => {
    expect(inviteTag("city.SH_east:3")).toBe("invite:city-sh_east:3");
    expect(inviteTag("a.b.c")).toBe("invite:a-b-c");
  });

  it("cuts the whole tag to 64 characters", () => {
    const tag = inviteTag("x".repeat(128));
    expect(tag).toBe(`invite:${"x".repeat(57)}`);
    expect(tag).toHaveLength(64);
    expect(tag).toMatch(/^[a-z0-9_:-]{1,64}$/);
  });
});

describe("group editor", () => {
  it("sends blanks as none and trims", () => {
    const form = { ...emptyGroupForm(), groupId: "g1", name: " Coffee ", tier: "silver",
                   tags: [" city ", ""], owner: " ", parent: "" };
    expect(groupBody(form)).toEqual({ name: "Coffee", tier: "silver", kind: "member",
                                      owner: null, tags: ["city"], parent: null });
    expect(groupFormProblems(form)).toEqual([]);
  });

  it("gives an existing group back as it is", () => {
    const group = {
      group_id: "grid-3", name: "Grid 3", tier: "silver", kind: "fan" as const, members: 4,
      created_at: "2026-12-01T00:00:00Z", updated_at: "2026-12-02T00:00:00Z", owner: "dana",
      tags: ["grid", "region:east"], parent: "city", status: "active" as const,
      dissolved_at: null,
    };
    const form = groupToForm(group);
    expect(groupBody(form)).toEqual({ name: "Grid 3", tier: "silver", kind: "fan", owner: "dana",
                                      tags: ["grid", "region:east"], parent: "city" });
  });

  it("names what is wrong", () => {
    const form = { ...emptyGroupForm(), groupId: "bad id", name: "", tier: "",
                   tags: ["Upper"], owner: "a b" };
    expect(groupFormProblems(form)).toEqual(["groups.problem.groupId", "groups.problem.name",
                                             "groups.problem.tier", "groups.problem.owner",
                                             "groups.problem.tags"]);
  });
});

describe("groupListQuery", () => {
  it("sends only the filters set, and the cursor", () => {
    expect(groupListQuery(emptyGroupFilters(), null, 20)).toEqual({ limit: 20 });
    const filters = { ...emptyGroupFilters(), tag: " grid ", kind: "fan" as const,
                      status: "active" as const, parent: "city" };
    expect(groupListQuery(filters, "c1", 20)).toEqual({ limit: 20, tag: "grid", kind: "fan",
                                                        status: "active", parent: "city",
                                                        cursor: "c1" });
  });
});

describe("trendWindow", () => {
  it("spans twelve whole weeks, from a Monday, the one holding today last", () => {
    // 2026-12-06 is a Sunday: its week began on Monday 2026-11-30, 11 weeks after 2026-09-14.
    expect(trendWindow("2026-12-06", 12)).toEqual({ from: "2026-09-14", to: "2026-12-06" });
    expect(trendWindow("2026-11-30", 12)).toEqual({ from: "2026-09-14", to: "2026-11-30" });
    expect(trendWindow("2026-12-07", 1)).toEqual({ from: "2026-12-07", to: "2026-12-07" });
    expect(mondayOf("2027-01-01")).toBe("2026-12-28");
    expect(addDays("2026-03-01", -1)).toBe("2026-02-28");
    expect(addDays("2024-12-31", 1)).toBe("2025-01-01");
  });
});

describe("migrationRows", () => {
  it("makes a row per member and target, and one without a target", () => {
    const rows = migrationRows([
      { member_id: "alice", group_id: "g-silver", group_tier: "silver", member_tier: "gold",
        value: 12.5, reason: "tier_mismatch", suggested_groups: ["G.Gold", "g2"] },
      { member_id: "bob", group_id: "g-silver", group_tier: "silver", member_tier: "bronze",
        value: null, reason: "tier_mismatch", suggested_groups: [] },
    ]);
    expect(rows.map((row) => [row.memberId, row.target, row.tag])).toEqual([
      ["alice", "G.Gold", "invite:g-gold"],
      ["alice", "g2", "invite:g2"],
      ["bob", null, null],
    ]);
    expect(new Set(rows.map((row) => row.key)).size).toBe(3);
  });
});

describe("groupTrendOption", () => {
  const trends = {
    periods: [
      { first_day: "2026-11-23", members: 3, joins: 3, leaves: 0 },
      { first_day: "2026-11-30", members: 5, joins: 4, leaves: 2 },
    ],
  };

  it("draws members as a line on its own axis and joins and leaves as bars", () => {
    const option = groupTrendOption(trends, label);
    const series = option.series as Series[];
    expect(series.map((s) => [s.name, s.type, s.data])).toEqual([
      ["groups.members", "line", [3, 5]],
      ["groups.joins", "bar", [3, 4]],
      ["groups.leaves", "bar", [0, 2]],
    ]);
    expect(series[0]!.yAxisIndex).toBe(1);
    expect((option.xAxis as { data: string[] }).data).toEqual(["2026-11-23", "2026-11-30"]);
  });

  it("draws nothing without periods", () => {
    const series = groupTrendOption({ periods: [] }, label).series as Series[];
    expect(series.map((s) => s.data)).toEqual([[], [], []]);
  });
});
