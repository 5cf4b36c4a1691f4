import { describe, expect, it } from "vitest";

import {
  ALL_EVENTS, createBody, emptyForm, EVENT_TYPES, formOf, formProblem, normaliseEventTypes,
  patchBody, pickerValueOf, replayBody, statusType, type Endpoint, wallTimeIn,
} from "../src/lib/webhooks";

const endpoint: Endpoint = {
  endpoint_id: "ep_1", url: "https://brand.example/hooks", event_types: ["PointsAwarded"],
  description: "CRM", enabled: true, allow_http: false,
  created_at: "2026-12-06T00:00:00Z", updated_at: "2026-12-06T00:00:00Z",
  disabled_reason: null, previous_secret_expires_at: null,
};

describe("event types", () => {
  it("are the public ones, each once", () => {
    expect(EVENT_TYPES).toHaveLength(18);
    expect(new Set(EVENT_TYPES).size).toBe(18);
    expect(EVENT_TYPES).toContain("CampaignSettled");
  });

  it("are deduplicated, and * covers every other", () => {
    expect(normaliseEventTypes(["PointsSpent", " PointsSpent", "TierChanged", ""]))
      .toEqual(["PointsSpent", "TierChanged"]);
    expect(normaliseEventTypes(["PointsSpent", ALL_EVENTS])).toEqual(["*"]);
    expect(normaliseEventTypes([])).toEqual([]);
  });
});

describe("endpoint form", () => {
  it("refuses what cannot be sent", () => {
    expect(formProblem({ ...emptyForm(), url: "" })).toBe("webhooks.urlRequired");
    expect(formProblem({ ...emptyForm(), url: "ftp://x" })).toBe("webhooks.urlInvalid");
    expect(formProblem({ ...emptyForm(), url: "https://a.example", event_types: [] }))
      .toBe("webhooks.typesRequired");
    expect(formProblem({ ...emptyForm(), url: "https://a.example" })).toBeNull();
  });

  it("makes the POST body", () => {
    expect(createBody({ url: " https://a.example/h ", event_types: ["TeamFormed", "TeamFormed"],
                        description: "x", allow_http: false }))
      .toEqual({ url: "https://a.example/h", event_types: ["TeamFormed"], description: "x",
                 allow_http: false });
  });

  it("patches only what changed", () => {
    expect(patchBody(endpoint, formOf(endpoint))).toBeNull();
    expect(patchBody(endpoint, { ...formOf(endpoint), event_types: ["PointsAwarded", "TierChanged"] }))
      .toEqual({ event_types: ["PointsAwarded", "TierChanged"] });
    expect(patchBody(endpoint, { ...formOf(endpoint), url: "https://b.example", description: "" }))
      .toEqual({ url: "https://b.example", description: "" });
    expect(patchBody(endpoint, { ...formOf(endpoint), allow_http: true })).toEqual({ allow_http: true });
  });
});

describe("replayBody", () => {
  it("is the window [from, to) in RFC 3339, from before to", () => {
    expect(replayBody(new Date("2026-12-06T00:00:00+08:00"), new Date("2026-12-06T12:00:00+08:00")))
      .toEqual({ from: "2026-12-05T16:00:00.000Z", to: "2026-12-06T04:00:00.000Z" });
    const at = new Date("2026-12-06T00:00:00Z");
    expect(replayBody(at, at)).toBeNull();
    expect(replayBody(null, at)).toBeNull();
    expect(replayBody(new Date("nope"), at)).toBeNull();
  });
});

describe("statusType", () => {
  it("colours a delivery by its status", () => {
    expect(["delivered", "pending", "failed", "other"].map(statusType))
      .toEqual(["success", "warning", "danger", "info"]);
  });
});

describe("wallTimeIn", () => {
  it("reads a picked wall time on the tenant's clock, whatever the browser's zone", () => {
    // The picker's Date holds 2026-12-06 00:00 in its local fields.
    const picked = new Date(2026, 11, 6, 0, 0, 0);
    expect(wallTimeIn(picked, "Asia/Shanghai").toISOString()).toBe("2026-12-05T16:00:00.000Z");
    expect(wallTimeIn(picked, "UTC").toISOString()).toBe("2026-12-06T00:00:00.000Z");
    expect(wallTimeIn(new Date(2026, 6, 1, 12, 30, 0), "America/New_York").toISOString())
      .toBe("2026-07-01T16:30:00.000Z");
  });

  it("is undone by pickerValueOf", () => {
    const instant = new Date("2026-12-06T03:04:05Z");
    for (const zone of ["Asia/Shanghai", "UTC", "America/New_York", "Asia/Kolkata"]) {
      expect(wallTimeIn(pickerValueOf(instant, zone), zone).toISOString())
        .toBe("2026-12-06T03:04:05.000Z");
    }
    const local = pickerValueOf(instant, "Asia/Shanghai");
    expect([local.getHours(), local.getMinutes(), local.getSeconds()]).toEqual([11, 4, 5]);
  });
});
