/** The Segments page's client-side rules: the filter editor's form, the filter it sends, what
 * is wrong with it, and the body of a grant of points to a segment. */
import type { PointsSchemas, TiersSchemas } from "@fuli/client";

export type SegmentFilter = TiersSchemas["SegmentFilter"];
export type Stage = NonNullable<SegmentFilter["stages"]>[number];
export const STAGES: readonly Stage[] = ["aware", "interested", "purchased", "loyal"];

const TAG = /^[a-z0-9_:-]{1,64}$/;
const ID = /^[A-Za-z0-9._:-]{1,128}$/;
const TIER = /^[A-Za-z0-9._-]{1,64}$/;
const SCORE_BOUND = 10 ** 12;

/** What the editor edits: lists (empty = no condition), bounds (null = open), KOC as three
 * choices. */
export interface SegmentForm {
  segmentId: string;
  name: string;
  tiers: string[];
  stages: Stage[];
  tagsAll: string[];
  tagsAny: string[];
  tagsNone: string[];
  valueMin: number | null;
  valueMax: number | null;
  groups: string[];
  koc: "any" | "yes" | "no";
}

export function emptySegmentForm(): SegmentForm {
  return { segmentId: "", name: "", tiers: [], stages: [], tagsAll: [], tagsAny: [],
           tagsNone: [], valueMin: null, valueMax: null, groups: [], koc: "any" };
}

const clean = (values: readonly string[]): string[] =>
  [...new Set(values.map((value) => value.trim()).filter((value) => value !== ""))];

const bound = (value: number | null | undefined): number | null =>
  value == null || Number.isNaN(value) ? null : value;

/** The filter of a form: a condition only where the form sets one (an empty filter selects
 * every known member). */
export function formToFilter(form: SegmentForm): SegmentFilter {
  const filter: SegmentFilter = {};
  const tiers = clean(form.tiers);
  if (tiers.length > 0) filter.tiers = tiers;
  if (form.stages.length > 0) filter.stages = STAGES.filter((stage) => form.stages.includes(stage));
  const all = clean(form.tagsAll);
  const any = clean(form.tagsAny);
  const none = clean(form.tagsNone);
  if (all.length + any.length + none.length > 0) filter.tags = { all, any, none };
  const min = bound(form.valueMin);
  const max = bound(form.valueMax);
  if (min !== null || max !== null) filter.value = { min, max };
  const groups = clean(form.groups);
  if (groups.length > 0) filter.groups = groups;
  if (form.koc !== "any") filter.koc = form.koc === "yes";
  return filter;
}

/** The form of a saved segment. */
export function segmentToForm(segment: TiersSchemas["Segment"]): SegmentForm {
  const filter = segment.filter;
  return {
    segmentId: segment.segment_id,
    name: segment.name,
    tiers: [...(filter.tiers ?? [])],
    stages: [...(filter.stages ?? [])],
    tagsAll: [...(filter.tags?.all ?? [])],
    tagsAny: [...(filter.tags?.any ?? [])],
    tagsNone: [...(filter.tags?.none ?? [])],
    valueMin: filter.value?.min ?? null,
    valueMax: filter.value?.max ?? null,
    groups: [...(filter.groups ?? [])],
    koc: filter.koc == null ? "any" : filter.koc ? "yes" : "no",
  };
}

/** What is wrong with a filter, as message keys; none means the API may still refuse what
 * only it knows (an unknown tier, tag group or group, no value model). */
export function filterProblems(form: SegmentForm): string[] {
  const problems: string[] = [];
  const filter = formToFilter(form);
  if ((filter.tiers ?? []).length > 20 || (filter.tiers ?? []).some((tier) => !TIER.test(tier))) {
    problems.push("segments.problem.tiers");
  }
  const tags = filter.tags;
  if (tags && [tags.all, tags.any, tags.none].some(
    (list) => (list ?? []).length > 50 || (list ?? []).some((tag) => !TAG.test(tag)))) {
    problems.push("segments.problem.tags");
  }
  const min = filter.value?.min ?? null;
  const max = filter.value?.max ?? null;
  if ([min, max].some((value) => value !== null && Math.abs(value) > SCORE_BOUND)) {
    problems.push("segments.problem.valueBound");
  } else if (min !== null && max !== null && min > max) {
    problems.push("segments.problem.valueOrder");
  }
  if ((filter.groups ?? []).length > 100 || (filter.groups ?? []).some((group) => !ID.test(group))) {
    problems.push("segments.problem.groups");
  }
  return problems;
}

/** What is wrong with the segment as a whole (its id and name too). */
export function segmentProblems(form: SegmentForm): string[] {
  const problems: string[] = [];
  if (!ID.test(form.segmentId.trim())) problems.push("segments.problem.segmentId");
  const name = form.name.trim();
  if (name === "" || name.length > 200) problems.push("segments.problem.name");
  return [...problems, ...filterProblems(form)];
}

export function segmentBody(form: SegmentForm): TiersSchemas["SegmentBody"] {
  return { name: form.name.trim(), filter: formToFilter(form) };
}

export interface GrantForm {
  points: number | null;
  reason: string;
}

/** The grant giving every member of a segment's frozen list the same points; null when the
 * form is not complete (points a positive whole number, a reason). */
export function segmentGrantBody(segmentId: string, form: GrantForm,
                                 grantId: string): PointsSchemas["GrantIn"] | null {
  const points = form.points;
  const reason = form.reason.trim();
  if (points == null || !Number.isInteger(points) || points <= 0 || points > 1_000_000_000) {
    return null;
  }
  if (reason === "" || reason.length > 200) return null;
  return { grant_id: grantId, reason, segment_id: segmentId, points };
}
