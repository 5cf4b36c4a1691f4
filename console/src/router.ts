/** The console's pages. Hash history: fuli serves one index.html at /console/ and every page
 * is a fragment of it. Each page loads on first visit. */
import { createRouter, createWebHashHistory, type RouteRecordRaw } from "vue-router";

import { clearPageCalls } from "./lib/resource";
import { session } from "./lib/session";

export interface PageMeta { title: string; public?: boolean; menu?: boolean }

export const pages: RouteRecordRaw[] = [
  { path: "/", redirect: "/overview" },
  { path: "/sign-in", name: "sign-in", component: () => import("./pages/SignInPage.vue"),
    meta: { title: "signIn.title", public: true, menu: false } },
  { path: "/overview", name: "overview", component: () => import("./pages/OverviewPage.vue"),
    meta: { title: "nav.overview" } },
  { path: "/members/:memberId?", name: "members", component: () => import("./pages/MembersPage.vue"),
    meta: { title: "nav.members" } },
  { path: "/tiers", name: "tiers", component: () => import("./pages/TiersPage.vue"),
    meta: { title: "nav.tiers" } },
  { path: "/groups/:groupId?", name: "groups", component: () => import("./pages/GroupsPage.vue"),
    meta: { title: "nav.groups" } },
  { path: "/catalog", name: "catalog", component: () => import("./pages/CatalogPage.vue"),
    meta: { title: "nav.catalog" } },
  { path: "/campaigns", name: "campaigns", component: () => import("./pages/CampaignsPage.vue"),
    meta: { title: "nav.campaigns" } },
  { path: "/tasks", name: "tasks", component: () => import("./pages/TasksPage.vue"),
    meta: { title: "nav.tasks" } },
  { path: "/segments", name: "segments", component: () => import("./pages/SegmentsPage.vue"),
    meta: { title: "nav.segments" } },
  { path: "/webhooks", name: "webhooks", component: () => import("./pages/WebhooksPage.vue"),
    meta: { title: "nav.webhooks" } },
  { path: "/:unknown(.*)*", redirect: "/overview" },
];

export const router = createRouter({ history: createWebHashHistory(), routes: pages });

let sessionRestored: Promise<unknown> = Promise.resolve();

/** The first navigation waits for the tab's kept key to be checked (lib/session restore). */
export function waitForSession(restoring: Promise<unknown>): void {
  sessionRestored = restoring;
}

/** Start loading the code of the page at `path` (the first page, while the session is
 * checked). */
export function prefetchPage(path: string): void {
  for (const record of router.resolve(path).matched) {
    const component = record.components?.default;
    if (typeof component === "function") void (component as () => Promise<unknown>)();
  }
}

router.beforeEach(async (to) => {
  await sessionRestored;
  const meta = to.meta as Partial<PageMeta>;
  if (!meta.public && session.identity === null) {
    return { name: "sign-in", query: to.fullPath === "/overview" ? {} : { next: to.fullPath } };
  }
  return true;
});

router.afterEach((to, from) => {
  if (to.name !== from.name) clearPageCalls();
});
