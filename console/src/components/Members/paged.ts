/** A cursor-paged list behind a part of the Members page: the first page through useResource
 * (so each page answered is recorded in the data drawer as sent and answered), further pages
 * appended on "more". */
import { computed, shallowRef, type ComputedRef, type Ref, type ShallowRef } from "vue";

import { appendPage } from "../../lib/members";
import { describeRequest, type Resource, useResource } from "../../lib/resource";

export interface Page<I> { items: I[]; next_cursor: string | null }

export interface PagedResource<P extends Page<unknown>> extends Resource<P> {
  /** Every item of the pages loaded so far. */
  items: ShallowRef<P["items"]>;
  /** Whether the API has more after the last page loaded. */
  hasMore: ComputedRef<boolean>;
  /** Nothing at all: the first page was empty. */
  none: ComputedRef<boolean>;
  first: () => Promise<void>;
  more: () => Promise<void>;
  /** The last request again (the same cursor). */
  retry: () => Promise<void>;
  cursor: Ref<string | null>;
}

export function usePagedResource<P extends Page<unknown>>(
  name: string, path: string, limit: number,
  fetchPage: (cursor: string | null) => Promise<P>,
  key: (item: P["items"][number]) => string,
): PagedResource<P> {
  const cursor = shallowRef<string | null>(null);
  const next = shallowRef<string | null>(null);
  const loaded = shallowRef(false);
  const items = shallowRef<P["items"]>([]);
  const resource = useResource(name, () => describeRequest("GET", path, { limit, cursor: cursor.value }),
                               () => fetchPage(cursor.value));

  async function load(from: string | null): Promise<void> {
    cursor.value = from;
    await resource.reload();
    const page = resource.data.value;
    if (page === null || resource.error.value !== null || cursor.value !== from) return;
    items.value = from === null ? page.items : appendPage(items.value, page.items, key);
    next.value = page.next_cursor;
    loaded.value = true;
  }

  return {
    ...resource,
    items,
    cursor,
    hasMore: computed(() => next.value !== null),
    none: computed(() => loaded.value && items.value.length === 0),
    first: () => load(null),
    more: () => (next.value === null ? Promise.resolve() : load(next.value)),
    retry: () => load(cursor.value),
  };
}
