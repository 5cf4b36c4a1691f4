/** Who is signed in: the API key (kept in sessionStorage, so it lives as long as the tab and
 * never appears in a URL) and what fuli says about it (tenant, time zone, role). */
import { createFuliClient, FuliError, type FuliClient, type PointsSchemas, unwrap } from "@fuli/client";
import { reactive } from "vue";

import { canSignIn, type Role } from "./roles";

const KEY_STORAGE = "fuli.console.key";

export type Identity = PointsSchemas["Whoami"];

export const session = reactive<{ identity: Identity | null }>({ identity: null });

let current: FuliClient | null = null;

function connect(key: string): FuliClient {
  return createFuliClient({ baseUrl: window.location.origin, apiKey: key });
}

/** The client of the signed-in key. */
export function fuli(): FuliClient {
  if (current === null) throw new Error("not signed in");
  return current;
}

export function role(): Role | null {
  return (session.identity?.role as Role | undefined) ?? null;
}

export function timeZone(): string {
  return session.identity?.time_zone ?? "Asia/Shanghai";
}

/** Signs in with a key: fuli must know it and it must be an operator's or an admin's. */
export async function signIn(key: string): Promise<Identity> {
  const candidate = connect(key.trim());
  const identity = await unwrap(candidate.GET("/points/v1/whoami"));
  if (!canSignIn(identity.role as Role)) {
    throw new FuliError(403, {
      error: { code: "forbidden", message: `role ${identity.role} cannot use the console`,
               details: { role: identity.role } },
    });
  }
  current = candidate;
  session.identity = identity;
  sessionStorage.setItem(KEY_STORAGE, key.trim());
  return identity;
}

/** Signs in again with the key this tab kept, if any. The key is forgotten only when fuli
 * refuses it (401, 403); while fuli is unreachable or restarting it stays for the next try. */
export async function restore(): Promise<boolean> {
  const key = sessionStorage.getItem(KEY_STORAGE);
  if (!key) return false;
  try {
    await signIn(key);
    return true;
  } catch (error) {
    if (error instanceof FuliError && (error.status === 401 || error.status === 403)) signOut();
    return false;
  }
}

export function signOut(): void {
  sessionStorage.removeItem(KEY_STORAGE);
  current = null;
  session.identity = null;
}
