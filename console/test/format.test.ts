import { describe, expect, it } from "vitest";

import { formatCents, formatDateTime, formatNumber, formatPercent, localDay, localHour, zoneOffset }
  from "../src/lib/format";

describe("format", () => {
  it("groups digits", () => {
    expect(formatNumber(1234567, "en")).toBe("1,234,567");
    expect(formatNumber(1234567, "zh-CN")).toBe("1,234,567");
    expect(formatNumber(null, "en")).toBe("—");
  });

  it("writes shares as percentages", () => {
    expect(formatPercent(0.125, "en")).toBe("12.5%");
    expect(formatPercent(1, "en", 0)).toBe("100%");
  });

  it("writes cents as yuan", () => {
    expect(formatCents(123450, "en")).toBe("CN¥1,234.50");
    expect(formatCents(123450, "zh-CN")).toBe("¥1,234.50");
  });

  it("shows instants on the tenant's clock", () => {
    const instant = "2026-12-06T16:30:05Z";
    expect(formatDateTime(instant, "Asia/Shanghai")).toBe("2026-12-07 00:30");
    expect(formatDateTime(instant, "UTC", true)).toBe("2026-12-06 16:30:05");
    expect(formatDateTime(instant, "America/New_York")).toBe("2026-12-06 11:30");
    expect(localDay(instant, "Asia/Shanghai")).toBe("2026-12-07");
    expect(localDay(instant, "UTC")).toBe("2026-12-06");
    expect(localHour("2026-12-06T16:00:00Z", "Asia/Shanghai")).toBe("12-07 00:00");
    // An hour of India's clock starts at half past on a UTC clock.
    expect(localHour("2026-12-06T04:30:00Z", "Asia/Kolkata")).toBe("12-06 10:00");
    expect(formatDateTime("not a time", "UTC")).toBe("—");
  });

  it("names a zone's offset", () => {
    expect(zoneOffset("Asia/Shanghai")).toBe("UTC+08:00");
    expect(zoneOffset("Asia/Kolkata")).toBe("UTC+05:30");
    expect(zoneOffset("America/New_York", new Date("2026-07-01T12:00:00Z"))).toBe("UTC-04:00");
    expect(zoneOffset("UTC")).toBe("UTC+00:00");
  });
});
