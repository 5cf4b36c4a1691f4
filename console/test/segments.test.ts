import { describe, expect, it } from "vitest";

import {
  emptySegmentForm, filterProblems, formToFilter, segmentBody, segmentGrantBody, segmentProblems,
  segmentToForm,
} from "../src/lib/segments";

describe("formToFilter", () => {
  it("is empty for an empty form: every known member", () => {
    expect(formToFilter(emptySegmentForm())).toEqual({});
  });

  it("sets only the conditions the form sets, stages in ladder order", () => {
    const form = {
      ...emptySegmentForm(), tiers: ["gold", " gold ", ""], stages: ["loyal", "aware"] as const,
      tagsAll: ["repurchaser"], tagsNone: ["dormant"], valueMin: 10, valueMax: null,
      groups: ["g1"], koc: "no" as const,
    };
    expect(formToFilter({ ...form, stages: [...form.stages] })).toEqual({
      tiers: ["gold"], stages: ["aware", "loyal"],
      tags: { all: ["repurchaser"], any: [], none: ["dormant"] },
      value: { min: 10, max: null }, groups: ["g1"], koc: false,
    });
  });

  it("round-trips a saved segment", () => {
    const segment = {
      segment_id: "vip", name: "VIP", count: 3, computed_at: "2026-12-06T00:00:00Z",
      created_at: "2026-12-06T00:00:00Z", updated_at: "2026-12-06T00:00:00Z",
      filter: { tiers: ["gold"], tags: { all: [], any: ["a", "b"], none: [] },
                value: { min: 0, max: 100 }, koc: true },
    };
    const form = segmentToForm(segment);
    expect(form.koc).toBe("yes");
    expect(form.valueMax).toBe(100);
    expect(segmentBody(form)).toEqual({ name: "VIP", filter: segment.filter });
  });
});

describe("filterProblems", () => {
  it("accepts a good filter", () => {
    expect(segmentProblems({ ...emptySegmentForm(), segmentId: "s1", name: "S" })).toEqual([]);
  });

  it("names malformed tags, reversed bounds and bad ids", () => {
    const form = { ...emptySegmentForm(), tagsAny: ["Not A Tag"], valueMin: 5, valueMax: 1,
                   groups: ["bad group"] };
    expect(filterProblems(form)).toEqual(["segments.problem.tags", "segments.problem.valueOrder",
                                          "segments.problem.groups"]);
    expect(segmentProblems(form).slice(0, 2)).toEqual(["segments.problem.segmentId",
                                                       "segments.problem.name"]);
  });
});

describe("segmentGrantBody", () => {
  it("gives every member of the segment the same points under one grant id", () => {
    expect(segmentGrantBody("vip", { points: 50, reason: " thanks " }, "grant:abc")).toEqual(
      { grant_id: "grant:abc", reason: "thanks", segment_id: "vip", points: 50 });
  });

  it("is incomplete without positive whole points and a reason", () => {
    expect(segmentGrantBody("vip", { points: null, reason: "r" }, "g")).toBeNull();
    expect(segmentGrantBody("vip", { points: 0, reason: "r" }, "g")).toBeNull();
    expect(segmentGrantBody("vip", { points: 1.5, reason: "r" }, "g")).toBeNull();
    expect(segmentGrantBody("vip", { points: 5, reason: "  " }, "g")).toBeNull();
  });
});
