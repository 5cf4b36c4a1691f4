/** One API call behind a part of a page: its data, loading and error states, recorded in the
 * page's data drawer so what a chart draws can be checked against what the API answered. */
import { FuliError } from "@fuli/client";
import {
  computed, getCurrentScope, onScopeDispose, reactive, ref, shallowRef, type Ref, type ShallowRef,
} from "vue";

export interface RecordedCall {
  /** What the call is for on the page ("distribution"). */
  name: string;
  /** The request as sent ("GET /tiers/v1/distribution"). */
  request: string;
  at: string;
  ok: boolean;
  /** The body answered: the data, or the error envelope. */
  body: unknown;
}

/** The calls of the page on screen, newest answer of each name. Cleared on navigation. */
export const pageCalls = reactive<RecordedCall[]>([]);

export function clearPageCalls(): void {
  pageCalls.splice(0, pageCalls.length);
}

export function recordCall(call: RecordedCall): void {
  const index = pageCalls.findIndex((existing) => existing.name === call.name);
  if (index >= 0) pageCalls.splice(index, 1, call);
  else pageCalls.push(call);
}

/** The message an operator sees for a failed call: the envelope's message and code. */
export function describeError(error: unknown): { message: string; code: string; status: number | null } {
  if (error instanceof FuliError) {
    return { message: error.message, code: error.code, status: error.status };
  }
  return { message: error instanceof Error ? error.message : String(error), code: "network_error",
           status: null };
}

export interface Resource<T> {
  data: ShallowRef<T | null>;
  loading: Ref<boolean>;
  error: Ref<ReturnType<typeof describeError> | null>;
  empty: Readonly<Ref<boolean>>;
  reload: () => Promise<void>;
}

export function useResource<T>(
  name: string,
  request: () => string,
  load: () => Promise<T>,
  isEmpty: (data: T) => boolean = () => false,
): Resource<T> {
  const data = shallowRef<T | null>(null);
  const loading = ref(false);
  const error = ref<ReturnType<typeof describeError> | null>(null);
  let generation = 0;

  async function reload(): Promise<void> {
    const mine = ++generation;
    loading.value = true;
    const described = request();
    try {
      const answer = await load();
      if (mine !== generation) return;
      data.value = answer;
      error.value = null;
      recordCall({ name, request: described, at: new Date().toISOString(), ok: true, body: answer });
    } catch (caught) {
      if (mine !== generation) return;
      data.value = null;
      error.value = describeError(caught);
      const body = caught instanceof FuliError
        ? { error: { code: caught.code, message: caught.message, details: caught.details } }
        : { error: { code: "network_error", message: String(caught) } };
      recordCall({ name, request: described, at: new Date().toISOString(), ok: false, body });
    } finally {
      if (mine === generation) loading.value = false;
    }
  }

  // An answer arriving after the page (or the part) is gone is dropped: it must not land in
  // the next page's data drawer.
  if (getCurrentScope()) onScopeDispose(() => { generation += 1; });

  const empty = computed(() => data.value !== null && isEmpty(data.value));
  return { data, loading, error, empty, reload };
}

/** "GET /path?a=1&b=2" from a path and the query actually sent (undefined values left out),
 * and the JSON body on the next line when one was sent. */
export function describeRequest(method: string, path: string,
                                query: Record<string, unknown> = {}, body?: unknown): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") params.append(key, String(value));
  }
  const text = params.toString();
  const line = `${method} ${path}${text ? `?${text}` : ""}`;
  return body === undefined ? line : `${line}\n${JSON.stringify(body)}`;
}
