/** The Groups page's client-side rules: the invitation tag, the editor's form and the body it
 * sends, the list's filters, the trend window and the rows of suggested migrations. */
import type { TiersSchemas } from "@fuli/client";

export type GroupKind = TiersSchemas["GroupBody"]["kind"];
export const GROUP_KINDS: readonly GroupKind[] = ["super", "member", "fan", "flash"];

/** A tag is 1-64 characters of [a-z0-9_:-] (services/tiers/tag_names.py). */
export const TAG_PATTERN = /^[a-z0-9_:-]{1,64}$/;
/** Ids of groups, owners and parents: 1-128 characters of [A-Za-z0-9._:-]. */
export const ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;
/** The tag group of invitation tags. */
export const INVITE_TAG_GROUP = "invite";
const TAG_MAX = 64;

/** The tag recording that a member was invited to a group: `invite:<group id>`, the id
 * lower-cased, every character outside [a-z0-9_:-] replaced by `-`, the whole cut to 64. */
export function inviteTag(groupId: string): string {
  const value = groupId.toLowerCase().replace(/[^a-z0-9_:-]/g, "-");
  return `${INVITE_TAG_GROUP}:${value}`.slice(0, TAG_MAX);
}

/** What the group editor edits; empty strings stand for "none". */
export interface GroupForm {
  groupId: string;
  name: string;
  tier: string;
  kind: GroupKind;
  owner: string;
  tags: string[];
  parent: string;
}

export function emptyGroupForm(): GroupForm {
  return { groupId: "", name: "", tier: "", kind: "member", owner: "", tags: [], parent: "" };
}

/** The form of an existing group (a PUT replaces it, so every field is carried over). */
export function groupToForm(group: TiersSchemas["Group"]): GroupForm {
  return {
    groupId: group.group_id, name: group.name, tier: group.tier, kind: group.kind,
    owner: group.owner ?? "", tags: [...group.tags], parent: group.parent ?? "",
  };
}

/** The PUT body of a form: blanks trimmed away, empty owner and parent as none. */
export function groupBody(form: GroupForm): TiersSchemas["GroupBody"] {
  const owner = form.owner.trim();
  const parent = form.parent.trim();
  return {
    name: form.name.trim(), tier: form.tier.trim(), kind: form.kind,
    owner: owner === "" ? null : owner,
    tags: form.tags.map((tag) => tag.trim()).filter((tag) => tag !== ""),
    parent: parent === "" ? null : parent,
  };
}

/** What is wrong with a form, as message keys (the API decides the rest: unknown tier or
 * parent, a cycle). */
export function groupFormProblems(form: GroupForm): string[] {
  const problems: string[] = [];
  const body = groupBody(form);
  if (!ID_PATTERN.test(form.groupId.trim())) problems.push("groups.problem.groupId");
  if (body.name === "" || body.name.length > 200) problems.push("groups.problem.name");
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(body.tier)) problems.push("groups.problem.tier");
  if (body.owner != null && !ID_PATTERN.test(body.owner)) problems.push("groups.problem.owner");
  if (body.parent != null && !ID_PATTERN.test(body.parent)) problems.push("groups.problem.parent");
  if ((body.tags ?? []).some((tag) => !TAG_PATTERN.test(tag)) || (body.tags ?? []).length > 50) {
    problems.push("groups.problem.tags");
  }
  return problems;
}

export interface GroupFilters {
  tag: string;
  owner: string;
  status: "" | "active" | "dissolved";
  tier: string;
  kind: "" | GroupKind;
  parent: string;
}

export function emptyGroupFilters(): GroupFilters {
  return { tag: "", owner: "", status: "", tier: "", kind: "", parent: "" };
}

export type GroupListQuery = {
  tag?: string; owner?: string; status?: "active" | "dissolved"; tier?: string;
  kind?: GroupKind; parent?: string; cursor?: string; limit?: number;
};

/** The list's query: only the filters set, trimmed, and the page's cursor. */
export function groupListQuery(filters: GroupFilters, cursor: string | null,
                               limit: number): GroupListQuery {
  const query: GroupListQuery = { limit };
  const text = (value: string) => value.trim();
  if (text(filters.tag)) query.tag = text(filters.tag);
  if (text(filters.owner)) query.owner = text(filters.owner);
  if (filters.status) query.status = filters.status;
  if (text(filters.tier)) query.tier = text(filters.tier);
  if (filters.kind) query.kind = filters.kind;
  if (text(filters.parent)) query.parent = text(filters.parent);
  if (cursor) query.cursor = cursor;
  return query;
}

/** A day "YYYY-MM-DD" moved by `days` (calendar arithmetic, no time zone involved). */
export function addDays(day: string, days: number): string {
  const [year, month, date] = day.split("-").map(Number);
  const moved = new Date(Date.UTC(year!, month! - 1, date! + days));
  return moved.toISOString().slice(0, 10);
}

/** The Monday of the ISO week holding a day. */
export function mondayOf(day: string): string {
  const [year, month, date] = day.split("-").map(Number);
  const weekday = new Date(Date.UTC(year!, month! - 1, date!)).getUTCDay();  // 0 = Sunday
  return addDays(day, -((weekday + 6) % 7));
}

/** The trends request's window ending on the tenant's `today`: from the Monday `weeks - 1`
 * weeks before this week's, so `by=week` gives exactly `weeks` weeks, the current one last. */
export function trendWindow(today: string, weeks: number): { from: string; to: string } {
  return { from: addDays(mondayOf(today), -7 * (weeks - 1)), to: today };
}

export interface MigrationRow {
  /** Unique per member and target group. */
  key: string;
  memberId: string;
  fromGroup: string;
  groupTier: string;
  memberTier: string | null;
  value: number | null;
  reason: TiersSchemas["MigrationSuggestion"]["reason"];
  /** The group to invite the member to; null when no group of their tier can take them. */
  target: string | null;
  tag: string | null;
}

/** One row per suggested member and target group, in the order the API suggests them (a
 * member with no group to go to: one row without a target). */
export function migrationRows(moves: readonly TiersSchemas["MigrationSuggestion"][]): MigrationRow[] {
  const rows: MigrationRow[] = [];
  const seen = new Set<string>();
  for (const move of moves) {
    const targets: (string | null)[] = move.suggested_groups.length > 0
      ? move.suggested_groups : [null];
    for (const target of targets) {
      const key = `${move.member_id}\u0000${move.group_id}\u0000${target ?? ""}`;
      if (seen.has(key)) continue;
      seen.add(key);
      rows.push({
        key, memberId: move.member_id, fromGroup: move.group_id, groupTier: move.group_tier,
        memberTier: move.member_tier, value: move.value, reason: move.reason, target,
        tag: target === null ? null : inviteTag(target),
      });
    }
  }
  return rows;
}
