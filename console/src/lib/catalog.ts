/** The Catalog page's client-side logic: the box editor's weights (what the draw would do with
 * them, the PUT body they make) and the goodness-of-fit check of the draws so far. */
import type { RewardsSchemas } from "@fuli/client";

import type { PrizeShare } from "./charts/catalog";
import { chiSquareTest, type ChiSquare, probabilities } from "./odds";

export type BoxDefinition = RewardsSchemas["BoxIn"];
export type PrizeDefinition = RewardsSchemas["PrizeIn"];

/** The bounds the API puts on a prize's weight (`PrizeIn.weight`: an integer, 0 < w ≤ 10^9). */
export const MIN_WEIGHT = 1;
export const MAX_WEIGHT = 1_000_000_000;

/** Each prize's weight in the definition, by prize id: the editor's starting point. */
export function initialWeights(definition: BoxDefinition): Record<string, number> {
  return Object.fromEntries(definition.prizes.map((prize) => [prize.prize_id, prize.weight]));
}

/** The weight the editor holds for a prize (the definition's while untouched). */
export function weightOf(prize: PrizeDefinition, weights: Readonly<Record<string, number>>): number {
  const edited = weights[prize.prize_id];
  return edited == null || Number.isNaN(edited) ? prize.weight : edited;
}

/** The odds the box would publish with these weights: each in-stock prize's share of the
 * in-stock weights. A prize with no stock left is not drawn (probability 0), as the draw does. */
export function previewOdds(prizes: readonly PrizeDefinition[],
                            weights: Readonly<Record<string, number>>): PrizeShare[] {
  const live = prizes.map((prize) => ({
    prize_id: prize.prize_id, name: prize.name,
    weight: prize.stock === 0 ? 0 : weightOf(prize, weights),
  }));
  const shares = probabilities(live);
  return live.map((prize, i) => ({ prize_id: prize.prize_id, name: prize.name,
                                   probability: shares[i]! }));
}

/** Prize ids whose edited weight the API would refuse (not an integer in 1..10^9). */
export function invalidWeights(prizes: readonly PrizeDefinition[],
                               weights: Readonly<Record<string, number>>): string[] {
  return prizes.filter((prize) => {
    const weight = weightOf(prize, weights);
    return !Number.isInteger(weight) || weight < MIN_WEIGHT || weight > MAX_WEIGHT;
  }).map((prize) => prize.prize_id);
}

/** True when some weight differs from the definition's. */
export function weightsChanged(definition: BoxDefinition,
                               weights: Readonly<Record<string, number>>): boolean {
  return definition.prizes.some((prize) => weightOf(prize, weights) !== prize.weight);
}

/** The definition to PUT: the one read, every field as it was, with the edited weights. */
export function withWeights(definition: BoxDefinition,
                            weights: Readonly<Record<string, number>>): BoxDefinition {
  return {
    ...definition,
    prizes: definition.prizes.map((prize) => ({ ...prize, weight: weightOf(prize, weights) })),
  };
}

/** A box's draw statistics as `GET /boxes/{id}/stats` answers them (the fields used here). */
export interface DrawCounts {
  draws: number;
  prizes: readonly { observed: number; expected: number }[];
}

/** Pearson's chi-square test of the prizes drawn against those the published odds expect;
 * null while it cannot be computed (no draw yet, fewer than two prizes that can be drawn). */
export function oddsFit(stats: DrawCounts): ChiSquare | null {
  return chiSquareTest(stats.prizes.map((prize) => prize.observed),
                       stats.prizes.map((prize) => prize.expected));
}

export type FitVerdict = "insufficient" | "consistent" | "suspicious";

/** How to read the test at significance `alpha`: too few draws to say, consistent with the
 * odds, or a deviation that chance rarely gives (p < alpha). */
export function fitVerdict(test: ChiSquare | null, alpha = 0.05): FitVerdict {
  if (test === null) return "insufficient";
  return test.pValue < alpha ? "suspicious" : "consistent";
}

/** Expected counts under 5 make the chi-square approximation rough: true when any prize that
 * can be drawn is expected fewer than 5 times. */
export function smallExpectations(stats: DrawCounts): boolean {
  return stats.prizes.some((prize) => prize.expected > 0 && prize.expected < 5);
}

/** A p-value as shown: four decimals, "< 0.0001" below that. */
export function formatP(p: number): string {
  return p < 0.0001 ? "< 0.0001" : p.toFixed(4);
}
