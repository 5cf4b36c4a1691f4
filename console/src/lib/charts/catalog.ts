/** Options of the Catalog page's charts: a blind box's odds as a pie, and the prizes drawn
 * against those expected as bars. Each is built from one API answer (or, for the editor's
 * preview, from the shares the edited weights give). */
import type { EChartsOption } from "echarts";

import { type Label, PALETTE } from "./common";

/** One slice of a box's odds: `GET /boxes/{id}/odds` `prizes[]` carry these fields. */
export interface PrizeShare { prize_id: string; name: string; probability: number }

/** A prize drawn so far against its expectation: `GET /boxes/{id}/stats` `prizes[]`. */
export interface PrizeTally { prize_id: string; name: string; observed: number; expected: number }

const percent = (share: unknown) => `${(Number(share) * 100).toFixed(4)}%`;

/** The odds as a ring: one slice per prize, its value the probability exactly as given. */
export function oddsPieOption(prizes: readonly PrizeShare[], label: Label): EChartsOption {
  return {
    color: PALETTE,
    tooltip: { trigger: "item", valueFormatter: percent },
    legend: { type: "scroll", bottom: 0 },
    series: [{
      name: label("catalog.probability"), type: "pie", radius: ["35%", "65%"],
      center: ["50%", "45%"], avoidLabelOverlap: true,
      label: { formatter: "{b}\n{d}%" },
      data: prizes.map((prize) => ({ id: prize.prize_id, name: prize.name,
                                     value: prize.probability })),
    }],
  };
}

/** Prizes drawn (observed) beside the draws times their probability (expected), per prize. */
export function observedOption(prizes: readonly PrizeTally[], label: Label): EChartsOption {
  return {
    tooltip: { trigger: "axis" },
    legend: { top: 0 },
    grid: { left: 56, right: 24, top: 36, bottom: 28 },
    xAxis: { type: "category", data: prizes.map((prize) => prize.name) },
    yAxis: { type: "value", name: label("catalog.draws") },
    series: [
      { name: label("catalog.observed"), type: "bar", color: PALETTE[0],
        data: prizes.map((prize) => prize.observed) },
      { name: label("catalog.expected"), type: "bar", color: PALETTE[4],
        data: prizes.map((prize) => prize.expected) },
    ],
  };
}
