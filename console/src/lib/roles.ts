/** What a key's role may do, as the API's guards decide it: each role may do what the roles
 * below it may (admin > operator > ingest). The console hides what the key may not do; the API
 * refuses it anyway. */
export type Role = "admin" | "operator" | "ingest" | "member";

const RANK: Record<Role, number> = { member: 0, ingest: 1, operator: 2, admin: 3 };

export function can(role: Role | null | undefined, needed: Exclude<Role, "member">): boolean {
  return role != null && RANK[role] >= RANK[needed];
}

/** A key the console can sign in with: it reads operators' figures. */
export function canSignIn(role: Role): boolean {
  return can(role, "operator");
}
