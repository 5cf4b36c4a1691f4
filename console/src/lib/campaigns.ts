/** The Campaigns page's client-side logic: what is left of a red-packet pool, and the
 * leaderboard's refresh while the page is in sight. */

/** The leaderboard shows the top teams, one page of the API's board. */
export const LEADERBOARD_SIZE = 20;
/** The leaderboard is read again this often while the page is visible. */
export const REFRESH_MS = 5000;

/** The fields of a pool (`GET /pools`, `GET /pools/{id}`) used here. */
export interface PoolFigures {
  packets: number;
  remaining_packets: number;
  total_points: number;
  remaining_points: number;
}

/** A part left of a whole, in percent with one decimal (0 when the whole is 0), for
 * `el-progress`. */
export function percentLeft(left: number, whole: number): number {
  if (whole <= 0) return 0;
  return Math.round((Math.max(0, Math.min(left, whole)) / whole) * 1000) / 10;
}

/** Share of a pool's packets not opened yet, in percent. */
export function packetsLeft(pool: PoolFigures): number {
  return percentLeft(pool.remaining_packets, pool.packets);
}

/** Share of a pool's points not handed out yet, in percent. */
export function pointsLeft(pool: PoolFigures): number {
  return percentLeft(pool.remaining_points, pool.total_points);
}

/** The colour of a pool's progress bar: green with plenty left, orange running low (under
 * 20 %), red when empty (the bar keeps its percentage as text). */
export function leftColor(percent: number): string {
  if (percent <= 0) return "#f56c6c";
  return percent < 20 ? "#e6a23c" : "#67c23a";
}

/** `GET /campaigns/{id}/results`: the ranking is there once the campaign is settled. */
export function settled(results: { state: string }): boolean {
  return results.state === "settled";
}

/** What the page needs of `document` to know whether it is in sight. */
export interface Visibility {
  visibilityState: string;
  addEventListener(type: "visibilitychange", listener: () => void): void;
  removeEventListener(type: "visibilitychange", listener: () => void): void;
}

/**
 * Calls `tick` every `ms` while the page is visible, and at once when it becomes visible again
 * (a hidden tab reads nothing). Returns the function that stops it (call it on unmount).
 */
export function refreshWhileVisible(tick: () => void, ms: number,
                                    page: Visibility): () => void {
  const onChange = () => {
    if (page.visibilityState === "visible") tick();
  };
  const timer = setInterval(() => {
    if (page.visibilityState === "visible") tick();
  }, ms);
  page.addEventListener("visibilitychange", onChange);
  return () => {
    clearInterval(timer);
    page.removeEventListener("visibilitychange", onChange);
  };
}
