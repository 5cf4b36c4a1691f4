/** Options of the Tasks page's charts, built only from the API's answers. */
import type { EChartsOption } from "echarts";

import { type Label, PALETTE } from "./common";

export interface StatsFigures {
  started: number;
  completed: number;
  claimed: number;
  rewarded: number;
}

export const FUNNEL_STEPS = ["started", "completed", "claimed", "rewarded"] as const;

/** A task's funnel (`GET /rewards/v1/tasks/{id}/stats`): members who started, completed,
 * claimed and were paid, one bar each. */
export function taskStatsOption(stats: StatsFigures, label: Label): EChartsOption {
  return {
    color: PALETTE.slice(0, FUNNEL_STEPS.length),
    tooltip: { trigger: "axis" },
    grid: { left: 56, right: 24, top: 24, bottom: 28 },
    xAxis: { type: "category", data: FUNNEL_STEPS.map((step) => label(`tasks.${step}`)) },
    yAxis: { type: "value", minInterval: 1 },
    series: [{
      name: label("tasks.members"), type: "bar", barMaxWidth: 48, colorBy: "data",
      data: FUNNEL_STEPS.map((step) => stats[step]),
      label: { show: true, position: "top" },
    }],
  };
}
