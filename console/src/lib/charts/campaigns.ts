/** Options of the Campaigns page's charts, each built from one API answer. */
import type { EChartsOption } from "echarts";

import { type Label, PALETTE } from "./common";

/** A row of `GET /campaigns/{id}/leaderboard` `items[]`. */
export interface BoardRow { rank: number; team_id: string; name: string | null; score: number;
                            members: number }

/** How a team is named on the board: its rank and name (its id when it has none). */
export function teamLabel(row: BoardRow): string {
  return `#${row.rank} ${row.name ?? row.team_id}`;
}

/** The board as horizontal bars, first rank on top; each bar is the team's score (net spend
 * in cents) exactly as answered; `money` writes cents for the axis and the tooltip. */
export function leaderboardOption(rows: readonly BoardRow[], label: Label,
                                  money: (cents: number) => string): EChartsOption {
  return {
    tooltip: { trigger: "axis", axisPointer: { type: "shadow" },
               valueFormatter: (value) => money(Number(value)) },
    grid: { left: 160, right: 48, top: 24, bottom: 28 },
    xAxis: { type: "value", name: label("campaigns.score"),
             axisLabel: { formatter: (value: number) => money(value) } },
    yAxis: { type: "category", inverse: true, data: rows.map(teamLabel) },
    series: [{
      name: label("campaigns.score"), type: "bar", color: PALETTE[2],
      data: rows.map((row) => row.score),
    }],
  };
}
