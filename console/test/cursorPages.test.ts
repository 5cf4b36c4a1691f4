import { describe, expect, it } from "vitest";

import { useCursorPages } from "../src/lib/cursorPages";

describe("useCursorPages", () => {
  it("goes forward on a next cursor, back to the cursors it saw, and resets", () => {
    const pages = useCursorPages();
    expect(pages.query(20)).toEqual({ limit: 20 });
    expect(pages.forward(null)).toBe(false);
    expect(pages.forward("c2")).toBe(true);
    expect(pages.forward("c3")).toBe(true);
    expect([pages.index.value, pages.query(20)]).toEqual([2, { limit: 20, cursor: "c3" }]);
    expect(pages.back()).toBe(true);
    expect(pages.cursor.value).toBe("c2");
    // Forward from an earlier page forgets the pages after it.
    expect(pages.forward("c3b")).toBe(true);
    expect(pages.back() && pages.back()).toBe(true);
    expect([pages.index.value, pages.cursor.value]).toEqual([0, null]);
    expect(pages.back()).toBe(false);
    pages.forward("c2");
    pages.reset();
    expect([pages.index.value, pages.query(5)]).toEqual([0, { limit: 5 }]);
  });
});
