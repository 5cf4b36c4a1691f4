/** Blind-box odds as operators check them: exact shares of the weights, and whether the draws
 * observed so far fit the published odds (Pearson's chi-square test). */

export interface WeightedPrize { prize_id: string; name: string; weight: number }

/** Each prize's probability, weight / total weight (0 for all when the total is 0). */
export function probabilities(prizes: readonly WeightedPrize[]): number[] {
  const total = prizes.reduce((sum, prize) => sum + Math.max(0, prize.weight), 0);
  return prizes.map((prize) => (total > 0 ? Math.max(0, prize.weight) / total : 0));
}

/** ln Γ(x) by the Lanczos approximation (g = 7, n = 9): 15 significant digits for x > 0. */
export function logGamma(x: number): number {
  const c = [0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313,
    -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6,
    1.5056327351493116e-7];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  const z = x - 1;
  let sum = c[0]!;
  for (let i = 1; i < 9; i++) sum += c[i]! / (z + i);
  const t = z + 7.5;
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(sum);
}

/** The regularized upper incomplete gamma function Q(s, x) = Γ(s, x) / Γ(s). */
export function upperGammaQ(s: number, x: number): number {
  if (x <= 0) return 1;
  if (x < s + 1) {
    // The series of the lower function P, then Q = 1 - P.
    let term = 1 / s;
    let sum = term;
    for (let n = 1; n < 1000; n++) {
      term *= x / (s + n);
      sum += term;
      if (Math.abs(term) < Math.abs(sum) * 1e-15) break;
    }
    return Math.max(0, 1 - sum * Math.exp(-x + s * Math.log(x) - logGamma(s)));
  }
  // Lentz's continued fraction for Q.
  const tiny = 1e-300;
  let b = x + 1 - s;
  let c = 1 / tiny;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 1000; i++) {
    const an = -i * (i - s);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < tiny) d = tiny;
    c = b + an / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < 1e-15) break;
  }
  return Math.min(1, Math.exp(-x + s * Math.log(x) - logGamma(s)) * h);
}

export interface ChiSquare {
  statistic: number;
  degreesOfFreedom: number;
  /** The chance of a deviation at least this large if the draws follow the odds. */
  pValue: number;
}

/** Pearson's test of observed counts against expected counts. Categories expected 0 times
 * must be observed 0 times (else the p-value is 0); they add no degree of freedom. Null when
 * fewer than two categories can occur or nothing was observed. */
export function chiSquareTest(observed: readonly number[],
                              expected: readonly number[]): ChiSquare | null {
  if (observed.length !== expected.length) throw new RangeError("observed and expected differ in length");
  let statistic = 0;
  let categories = 0;
  let impossible = false;
  for (let i = 0; i < observed.length; i++) {
    const o = observed[i]!;
    const e = expected[i]!;
    if (e > 0) {
      statistic += (o - e) ** 2 / e;
      categories += 1;
    } else if (o > 0) {
      impossible = true;
    }
  }
  const drawn = observed.reduce((sum, o) => sum + o, 0);
  if (categories < 2 || drawn === 0) return null;
  const degreesOfFreedom = categories - 1;
  const pValue = impossible ? 0 : upperGammaQ(degreesOfFreedom / 2, statistic / 2);
  return { statistic, degreesOfFreedom, pValue };
}
