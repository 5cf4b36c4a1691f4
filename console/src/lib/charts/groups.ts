/** Options of the Groups page's charts, built only from the API's answers. */
import type { EChartsOption } from "echarts";

import { type Label, PALETTE } from "./common";

export interface TrendFigures {
  first_day: string;
  members: number;
  joins: number;
  leaves: number;
}

/** A group's trends (`GET /tiers/v1/groups/{id}/trends`): members at each period's end as a
 * line on its own axis, joins and leaves per period as bars, each period labelled by its first
 * day. */
export function groupTrendOption(trends: { periods: readonly TrendFigures[] },
                                 label: Label): EChartsOption {
  const periods = trends.periods;
  return {
    tooltip: { trigger: "axis" },
    legend: { top: 0 },
    grid: { left: 56, right: 64, top: 36, bottom: 28 },
    xAxis: { type: "category", data: periods.map((period) => period.first_day) },
    yAxis: [{ type: "value", name: label("groups.flow"), minInterval: 1 },
            { type: "value", name: label("groups.members"), minInterval: 1,
              splitLine: { show: false } }],
    series: [
      { name: label("groups.members"), type: "line", yAxisIndex: 1, color: PALETTE[0],
        data: periods.map((period) => period.members) },
      { name: label("groups.joins"), type: "bar", color: PALETTE[1],
        data: periods.map((period) => period.joins) },
      { name: label("groups.leaves"), type: "bar", color: PALETTE[3],
        data: periods.map((period) => period.leaves) },
    ],
  };
}
