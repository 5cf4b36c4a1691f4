/** Numbers and times as an operator reads them: grouped digits, the tenant's time zone. */

export type Locale = "zh-CN" | "en";

export function formatNumber(value: number | null | undefined, locale: Locale): string {
  if (value == null || Number.isNaN(value)) return "—";
  return new Intl.NumberFormat(locale).format(value);
}

/** A share in [0, 1] as a percentage with `digits` decimals ("12.5%"). */
export function formatPercent(share: number | null | undefined, locale: Locale,
                              digits = 1): string {
  if (share == null || Number.isNaN(share)) return "—";
  return new Intl.NumberFormat(locale, {
    style: "percent", minimumFractionDigits: digits, maximumFractionDigits: digits,
  }).format(share);
}

/** Cents as yuan ("¥1,234.50"). */
export function formatCents(cents: number | null | undefined, locale: Locale): string {
  if (cents == null) return "—";
  return new Intl.NumberFormat(locale, { style: "currency", currency: "CNY" }).format(cents / 100);
}

function parts(instant: Date, timeZone: string): Record<string, string> {
  const formatter = new Intl.DateTimeFormat("en-CA", {
    timeZone, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  });
  const out: Record<string, string> = {};
  for (const part of formatter.formatToParts(instant)) out[part.type] = part.value;
  return out;
}

/** An instant in the tenant's time zone, "2026-12-06 20:05" (seconds with `seconds`). */
export function formatDateTime(value: string | Date | null | undefined, timeZone: string,
                               seconds = false): string {
  if (value == null) return "—";
  const instant = typeof value === "string" ? new Date(value) : value;
  if (Number.isNaN(instant.getTime())) return "—";
  const p = parts(instant, timeZone);
  const time = `${p.hour}:${p.minute}${seconds ? `:${p.second}` : ""}`;
  return `${p.year}-${p.month}-${p.day} ${time}`;
}

/** The local day of an instant in the tenant's time zone, "2026-12-06". */
export function localDay(value: string | Date, timeZone: string): string {
  const p = parts(typeof value === "string" ? new Date(value) : value, timeZone);
  return `${p.year}-${p.month}-${p.day}`;
}

/** An instant on the tenant's clock without the year, "12-06 20:00", for hourly axes. */
export function localHour(value: string | Date, timeZone: string): string {
  const p = parts(typeof value === "string" ? new Date(value) : value, timeZone);
  return `${p.month}-${p.day} ${p.hour}:${p.minute}`;
}

/** The UTC offset of a time zone now, "UTC+08:00". */
export function zoneOffset(timeZone: string, at: Date = new Date()): string {
  const p = parts(at, timeZone);
  const local = Date.UTC(Number(p.year), Number(p.month) - 1, Number(p.day), Number(p.hour),
                         Number(p.minute), Number(p.second));
  const minutes = Math.round((local - Math.floor(at.getTime() / 1000) * 1000) / 60000);
  const sign = minutes < 0 ? "-" : "+";
  const abs = Math.abs(minutes);
  const hh = String(Math.floor(abs / 60)).padStart(2, "0");
  const mm = String(abs % 60).padStart(2, "0");
  return `UTC${sign}${hh}:${mm}`;
}
