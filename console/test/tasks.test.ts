import { describe, expect, it } from "vitest";

import { taskStatsOption } from "../src/lib/charts/tasks";
import { parseTaskText, rewardSummary, taskIdProblem, taskTemplate, taskText, taskToBody }
  from "../src/lib/tasks";

const label = (key: string) => key;

const task = {
  task_id: "join", name: "Join", description: "", kind: "once" as const,
  condition: { action: "group_joined", count: 1, min_amount_cents: null,
               attributes: { group_id: "newcomers" } },
  streak_days: null, starts_at: null, ends_at: null, tiers: null, after: "profile",
  reward: { points: null, tickets: { box_id: "welcome", count: 1 }, perk: null },
  claim: "auto" as const, enabled: true, updated_at: "2026-12-06T00:00:00Z",
};

describe("taskToBody", () => {
  it("gives the PUT body of a task, nones left out", () => {
    expect(taskToBody(task)).toEqual({
      name: "Join", description: "", kind: "once",
      condition: { action: "group_joined", count: 1, attributes: { group_id: "newcomers" } },
      reward: { tickets: { box_id: "welcome", count: 1 } }, claim: "auto", enabled: true,
      after: "profile",
    });
  });
});

describe("parseTaskText", () => {
  it("takes the text of a body back", () => {
    const body = taskToBody(task);
    expect(parseTaskText(taskText(body))).toEqual({ ok: true, body });
  });

  it("names the first thing wrong", () => {
    expect(parseTaskText("{").ok).toBe(false);
    expect(parseTaskText("[]")).toMatchObject({ ok: false, problem: "tasks.problem.object" });
    expect(parseTaskText(JSON.stringify({ ...taskTemplate(), name: "x", colour: "red" })))
      .toEqual({ ok: false, problem: "tasks.problem.unknownField", detail: "colour" });
    expect(parseTaskText(JSON.stringify(taskTemplate())))
      .toEqual({ ok: false, problem: "tasks.problem.field", detail: "name" });
    expect(parseTaskText(JSON.stringify({ ...taskTemplate(), name: "x", kind: "hourly" })))
      .toEqual({ ok: false, problem: "tasks.problem.field", detail: "kind" });
    expect(parseTaskText(JSON.stringify({ ...taskTemplate(), name: "x", reward: {} })))
      .toEqual({ ok: false, problem: "tasks.problem.field", detail: "reward" });
    expect(parseTaskText(JSON.stringify({ ...taskTemplate(), name: "x", condition: {} })))
      .toEqual({ ok: false, problem: "tasks.problem.field", detail: "condition.action" });
  });

  it("leaves the API's checks to the API (a bad count still parses)", () => {
    const text = JSON.stringify({ ...taskTemplate(), name: "x",
                                  condition: { action: "check_in", count: 0 } });
    expect(parseTaskText(text).ok).toBe(true);
  });
});

describe("task ids and rewards", () => {
  it("checks ids", () => {
    expect(taskIdProblem("guide-1")).toBe(false);
    expect(taskIdProblem("bad id")).toBe(true);
    expect(taskIdProblem("")).toBe(true);
  });

  it("reads a reward", () => {
    const words = (key: string, named?: Record<string, unknown>) => `${key}${JSON.stringify(named)}`;
    expect(rewardSummary({ points: 10, tickets: { box_id: "b", count: 2 }, perk: "cup" }, words))
      .toBe('tasks.rewardPoints{"n":10} + tasks.rewardTickets{"n":2,"box":"b"} + tasks.rewardPerk{"sku":"cup"}');
  });
});

describe("taskStatsOption", () => {
  it("draws started, completed, claimed and paid members as bars", () => {
    const option = taskStatsOption({ started: 9, completed: 5, claimed: 4, rewarded: 3 }, label);
    const series = option.series as { data: number[] }[];
    expect(series).toHaveLength(1);
    expect(series[0]!.data).toEqual([9, 5, 4, 3]);
    expect((option.xAxis as { data: string[] }).data).toEqual(
      ["tasks.started", "tasks.completed", "tasks.claimed", "tasks.rewarded"]);
  });
});
