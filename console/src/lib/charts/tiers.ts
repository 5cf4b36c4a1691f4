/** Options of the Tiers page's charts. */
import type { EChartsOption } from "echarts";

import { type Label, PALETTE } from "./common";

export interface TierShare { tier: string; members: number; share: number }
export interface CutLine { tier: string; members: number; from_value: number | null }

/** Members per tier as bars, each tier's cut line (the value score it starts at) under its
 * name. */
export function distributionOption(tiers: readonly TierShare[], cutLines: readonly CutLine[],
                                   label: Label): EChartsOption {
  const cuts = new Map(cutLines.map((cut) => [cut.tier, cut.from_value]));
  const names = tiers.map((share) => {
    const from = cuts.get(share.tier);
    return from == null ? share.tier : `${share.tier}\n≥ ${Number(from.toFixed(2))}`;
  });
  return {
    tooltip: { trigger: "axis" },
    grid: { left: 56, right: 24, top: 24, bottom: 48 },
    xAxis: { type: "category", data: names },
    yAxis: { type: "value", name: label("tiers.members") },
    series: [{
      name: label("tiers.members"), type: "bar", color: PALETTE[0],
      label: { show: true, position: "top" },
      data: tiers.map((share) => share.members),
    }],
  };
}
