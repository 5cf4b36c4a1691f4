/** The Tasks page's client-side rules: a task as the body its PUT takes, the editor's JSON
 * text checked before it is sent, and how a reward reads. */
import type { RewardsSchemas } from "@fuli/client";

export type Task = RewardsSchemas["Task"];
export type TaskIn = RewardsSchemas["TaskIn"];
export const TASK_KINDS: readonly Task["kind"][] = ["once", "daily", "weekly", "monthly", "streak"];
const ID = /^[A-Za-z0-9._:-]{1,128}$/;
const FIELDS = new Set(["name", "description", "kind", "condition", "streak_days", "starts_at",
                        "ends_at", "tiers", "after", "reward", "claim", "enabled"]);

/** The PUT body that gives the task back as it is (fields at their "none" left out). */
export function taskToBody(task: Task): TaskIn {
  const condition: TaskIn["condition"] = { action: task.condition.action,
                                           count: task.condition.count };
  if (task.condition.min_amount_cents != null) {
    condition.min_amount_cents = task.condition.min_amount_cents;
  }
  if (task.condition.attributes != null) condition.attributes = { ...task.condition.attributes };
  const reward: TaskIn["reward"] = {};
  if (task.reward.points != null) reward.points = task.reward.points;
  if (task.reward.tickets != null) reward.tickets = { ...task.reward.tickets };
  if (task.reward.perk != null) reward.perk = task.reward.perk;
  const body: TaskIn = { name: task.name, description: task.description, kind: task.kind,
                         condition, reward, claim: task.claim, enabled: task.enabled };
  if (task.streak_days != null) body.streak_days = task.streak_days;
  if (task.starts_at != null) body.starts_at = task.starts_at;
  if (task.ends_at != null) body.ends_at = task.ends_at;
  if (task.tiers != null) body.tiers = [...task.tiers];
  if (task.after != null) body.after = task.after;
  return body;
}

/** A new task's starting text: once, one event of an action, 10 points. */
export function taskTemplate(): TaskIn {
  return { name: "", description: "", kind: "once", condition: { action: "check_in", count: 1 },
           reward: { points: 10 }, claim: "auto", enabled: true };
}

export function taskText(body: TaskIn): string {
  return JSON.stringify(body, null, 2);
}

export type Parsed =
  | { ok: true; body: TaskIn }
  | { ok: false; problem: string; detail: string };

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** The editor's text as a task body, or the first thing wrong with it (a message key and the
 * field or parser's words). Only the shape is checked here; the API checks the rest and its
 * 422 message is shown as it comes. */
export function parseTaskText(text: string): Parsed {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { ok: false, problem: "tasks.problem.json",
             detail: error instanceof Error ? error.message : String(error) };
  }
  if (!isObject(value)) return { ok: false, problem: "tasks.problem.object", detail: "" };
  const unknown = Object.keys(value).find((key) => !FIELDS.has(key));
  if (unknown !== undefined) return { ok: false, problem: "tasks.problem.unknownField", detail: unknown };
  if (typeof value.name !== "string" || value.name.trim() === "") {
    return { ok: false, problem: "tasks.problem.field", detail: "name" };
  }
  if (typeof value.kind !== "string" || !(TASK_KINDS as readonly string[]).includes(value.kind)) {
    return { ok: false, problem: "tasks.problem.field", detail: "kind" };
  }
  if (!isObject(value.condition) || typeof value.condition.action !== "string"
      || value.condition.action === "") {
    return { ok: false, problem: "tasks.problem.field", detail: "condition.action" };
  }
  const reward = value.reward;
  if (!isObject(reward) || !["points", "tickets", "perk"].some((key) => reward[key] != null)) {
    return { ok: false, problem: "tasks.problem.field", detail: "reward" };
  }
  return { ok: true, body: value as unknown as TaskIn };
}

export function taskIdProblem(taskId: string): boolean {
  return !ID.test(taskId.trim());
}

/** A reward in one line: "10 points + 1 × box welcome + perk cup" (words from `label`). */
export function rewardSummary(reward: Task["reward"], label: (key: string, named?: Record<string, unknown>) => string): string {
  const parts: string[] = [];
  if (reward.points != null) parts.push(label("tasks.rewardPoints", { n: reward.points }));
  if (reward.tickets != null) {
    parts.push(label("tasks.rewardTickets", { n: reward.tickets.count, box: reward.tickets.box_id }));
  }
  if (reward.perk != null) parts.push(label("tasks.rewardPerk", { sku: reward.perk }));
  return parts.join(" + ");
}
