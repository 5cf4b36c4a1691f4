// Compile-time checks (`npm run typecheck`): each `@ts-expect-error` line must fail to compile,
// or tsc reports the directive as unused and the check fails.
import { createFuliClient, verifyWebhook } from "../src/index.js";

const fuli = createFuliClient({ baseUrl: "http://127.0.0.1:8000", apiKey: "fuli_..." });

export async function requestsTheTypesAccept(): Promise<void> {
  await fuli.POST("/points/v1/events", {
    body: { event_id: "e-1", member_id: "alice", action: "speak" },
  });
  await fuli.PUT("/rewards/v1/perks/{sku}", {
    params: { path: { sku: "coffee" } },
    body: { name: "Free coffee", cost_points: 50 },
  });
}

export async function requestsTheTypesRefuse(): Promise<void> {
  // @ts-expect-error an event needs a member_id
  await fuli.POST("/points/v1/events", { body: { event_id: "e-1", action: "speak" } });
  await fuli.PUT("/rewards/v1/boxes/{box_id}", {
    params: { path: { box_id: "box" } },
    // @ts-expect-error a box needs cost_points
    body: { name: "Lucky box", prizes: [] },
  });
  await fuli.PUT("/rewards/v1/boxes/{box_id}", {
    params: { path: { box_id: "box" } },
    // @ts-expect-error each prize needs a prize_id and a name
    body: { name: "Lucky box", cost_points: 10, prizes: [{ kind: "nothing", weight: 1 }] },
  });
  await fuli.POST("/points/v1/events", {
    // @ts-expect-error amount_cents is a number of cents, not text
    body: { event_id: "e-1", member_id: "alice", action: "purchase", amount_cents: "12900" },
  });
  // @ts-expect-error the path parameter member_id is missing
  await fuli.GET("/points/v1/members/{member_id}", {});
  // @ts-expect-error no such path
  await fuli.GET("/points/v1/nothing");
}

export async function webhookBodiesTheTypesRefuse(headers: Headers): Promise<void> {
  await verifyWebhook("whsec_...", headers, "{}");
  // @ts-expect-error the body must be the raw text or bytes received, not parsed JSON
  await verifyWebhook("whsec_...", headers, { type: "TierChanged" });
  // @ts-expect-error the time to check against is a Date
  await verifyWebhook("whsec_...", headers, "{}", { now: 1780000000 });
}
