// The live stack the tests run against, and a fresh tenant's keys and members for each test.
import { createFuliClient, type FuliClient, newId, unwrap } from "../src/index.js";

export const baseUrl = process.env.FULI_URL ?? "http://127.0.0.1:8000";
const adminKey = process.env.FULI_ADMIN_KEY;

export function admin(): FuliClient {
  if (!adminKey) throw new Error("set FULI_ADMIN_KEY (and FULI_URL) to run against a live stack");
  return createFuliClient({ baseUrl, apiKey: adminKey });
}

export async function keyOf(role: "ingest" | "operator"): Promise<FuliClient> {
  const created = await unwrap(
    admin().POST("/points/v1/keys", { body: { role, label: `client test ${role}` } }),
  );
  return createFuliClient({ baseUrl, apiKey: created.key });
}

export async function memberClient(ingest: FuliClient, memberId: string): Promise<FuliClient> {
  const token = await unwrap(
    ingest.POST("/points/v1/member-tokens", { body: { member_id: memberId, ttl_s: 600 } }),
  );
  return createFuliClient({ baseUrl, memberToken: token.token });
}

export function member(): string {
  return newId("member");
}
