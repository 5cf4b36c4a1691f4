/** The Webhooks page's client-side logic: the endpoint form (the POST and PATCH bodies it
 * makes), a replay's window, and how a delivery's status is shown. */
import type { WebhooksSchemas } from "@fuli/client";

export type Endpoint = WebhooksSchemas["Endpoint"];
export type EndpointBody = WebhooksSchemas["EndpointBody"];
export type EndpointPatch = WebhooksSchemas["EndpointPatch"];

/** `*`: every public event type, including ones added later. */
export const ALL_EVENTS = "*";

/** The public event types an endpoint may subscribe to (PUBLIC_EVENT_TYPES of the API's
 * contracts, README "Event types"); the form also takes a type typed in. */
export const EVENT_TYPES = [
  "PointsAwarded", "PointsSpent", "PointsExpired", "PointsReversed", "PointsRefunded",
  "TierChanged", "LifecycleChanged", "GroupJoined",
  "RedemptionCompleted", "RedemptionCancelled", "CouponUsed", "CouponTransferred",
  "PacketMade", "PacketGrabbed", "TeamFormed", "CampaignSettled",
  "TaskCompleted", "TaskRewarded",
] as const;

export interface EndpointForm {
  url: string;
  event_types: string[];
  description: string;
  allow_http: boolean;
}

export function emptyForm(): EndpointForm {
  return { url: "", event_types: [ALL_EVENTS], description: "", allow_http: false };
}

export function formOf(endpoint: Endpoint): EndpointForm {
  return { url: endpoint.url, event_types: [...endpoint.event_types],
           description: endpoint.description, allow_http: endpoint.allow_http };
}

/** The selected types, each once, in the order chosen; `*` alone when chosen (it covers
 * every other). */
export function normaliseEventTypes(selected: readonly string[]): string[] {
  const types = [...new Set(selected.map((type) => type.trim()).filter((type) => type !== ""))];
  return types.includes(ALL_EVENTS) ? [ALL_EVENTS] : types;
}

/** Why the form cannot be sent (a message key of the page), or null. The API checks the rest
 * (https, a public address) and its refusal is shown as it comes. */
export function formProblem(form: EndpointForm): string | null {
  const url = form.url.trim();
  if (url === "") return "webhooks.urlRequired";
  if (!/^https?:\/\/[^\s]+$/i.test(url)) return "webhooks.urlInvalid";
  if (normaliseEventTypes(form.event_types).length === 0) return "webhooks.typesRequired";
  return null;
}

/** `POST /endpoints` body of the form. */
export function createBody(form: EndpointForm): EndpointBody {
  return { url: form.url.trim(), event_types: normaliseEventTypes(form.event_types),
           description: form.description, allow_http: form.allow_http };
}

/** `PATCH /endpoints/{id}` body: only the fields the form changed (null when none). */
export function patchBody(before: Endpoint, form: EndpointForm): EndpointPatch | null {
  const patch: EndpointPatch = {};
  const url = form.url.trim();
  const types = normaliseEventTypes(form.event_types);
  if (url !== before.url) patch.url = url;
  if (types.join("\n") !== before.event_types.join("\n")) patch.event_types = types;
  if (form.description !== before.description) patch.description = form.description;
  if (form.allow_http !== before.allow_http) patch.allow_http = form.allow_http;
  return Object.keys(patch).length === 0 ? null : patch;
}

/** `POST /endpoints/{id}/replay` body for the window [from, to): RFC 3339 instants (UTC);
 * null unless from is before to. */
export function replayBody(from: Date | null, to: Date | null): { from: string; to: string } | null {
  if (from === null || to === null) return null;
  if (Number.isNaN(from.getTime()) || Number.isNaN(to.getTime())) return null;
  if (from.getTime() >= to.getTime()) return null;
  return { from: from.toISOString(), to: to.toISOString() };
}

/** The tag colour of a delivery's status. */
export function statusType(status: string): "success" | "warning" | "danger" | "info" {
  switch (status) {
    case "delivered": return "success";
    case "pending": return "warning";
    case "failed": return "danger";
    default: return "info";
  }
}

function zoneParts(instant: Date, timeZone: string): number[] {
  const formatter = new Intl.DateTimeFormat("en-CA", {
    timeZone, year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  });
  const p: Record<string, string> = {};
  for (const part of formatter.formatToParts(instant)) p[part.type] = part.value;
  return [Number(p.year), Number(p.month) - 1, Number(p.day), Number(p.hour), Number(p.minute),
          Number(p.second)];
}

/** Milliseconds `timeZone` is ahead of UTC at `instant`. */
function zoneOffsetMs(instant: Date, timeZone: string): number {
  const [y, mo, d, h, mi, s] = zoneParts(instant, timeZone);
  const wall = Date.UTC(y!, mo!, d!, h!, mi!, s!);
  return wall - Math.floor(instant.getTime() / 1000) * 1000;
}

/**
 * The instant at which the tenant's clock shows the wall time a date picker chose (the
 * picker's Date carries it in the browser's local fields), so a window chosen in the console
 * means the tenant's time, as every time shown on the page does.
 */
export function wallTimeIn(picked: Date, timeZone: string): Date {
  const wall = Date.UTC(picked.getFullYear(), picked.getMonth(), picked.getDate(),
                        picked.getHours(), picked.getMinutes(), picked.getSeconds());
  let instant = wall - zoneOffsetMs(new Date(wall), timeZone);
  // Near a change of offset the first guess can be an hour off; one correction settles it.
  instant = wall - zoneOffsetMs(new Date(instant), timeZone);
  return new Date(instant);
}

/** The tenant's wall time of an instant as a local Date, for a date picker's value. */
export function pickerValueOf(instant: Date, timeZone: string): Date {
  const [y, mo, d, h, mi, s] = zoneParts(instant, timeZone);
  return new Date(y!, mo!, d!, h!, mi!, s!);
}
