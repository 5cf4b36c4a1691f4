/** Options of the Overview page's charts, built only from the API's answers. */
import type { EChartsOption } from "echarts";

import { localHour } from "../format";
import { type Label, PALETTE } from "./common";

export interface DailyFigures {
  day: string;
  issued: number;
  spent: number;
  expired: number;
  reversed: number;
  balance: number;
}

/** Points issued, spent, expired and reversed per day as stacked bars (all but issued below the
 * axis), and the points members hold at the end of each day as a line on its own axis. */
export function dailyPointsOption(days: readonly DailyFigures[], label: Label): EChartsOption {
  const bar = (key: "issued" | "spent" | "expired" | "reversed", sign: 1 | -1, color: string) => ({
    name: label(`overview.${key}`), type: "bar" as const, stack: "flow", color,
    data: days.map((day) => sign * day[key]),
  });
  return {
    tooltip: { trigger: "axis" },
    legend: { top: 0 },
    grid: { left: 56, right: 64, top: 36, bottom: 28 },
    xAxis: { type: "category", data: days.map((day) => day.day.slice(5)) },
    yAxis: [{ type: "value", name: label("overview.flow") },
            { type: "value", name: label("overview.balance"), splitLine: { show: false } }],
    series: [
      bar("issued", 1, PALETTE[0]!),
      bar("spent", -1, PALETTE[1]!),
      bar("expired", -1, PALETTE[2]!),
      bar("reversed", -1, PALETTE[3]!),
      { name: label("overview.balance"), type: "line", yAxisIndex: 1, color: PALETTE[4],
        data: days.map((day) => day.balance) },
    ],
  };
}

export interface HourlyFigures { hour: string; events: number; points: number }

/** Events recorded per hour, on the tenant's clock. */
export function hourlyEventsOption(hours: readonly HourlyFigures[], timeZone: string,
                                   label: Label): EChartsOption {
  return {
    tooltip: { trigger: "axis" },
    grid: { left: 56, right: 24, top: 24, bottom: 28 },
    xAxis: { type: "category", data: hours.map((hour) => localHour(hour.hour, timeZone)) },
    yAxis: { type: "value" },
    series: [{ name: label("overview.events"), type: "line", smooth: true, areaStyle: {},
               color: PALETTE[0], data: hours.map((hour) => hour.events) }],
  };
}
