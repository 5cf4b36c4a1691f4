/** Previous and next over a cursor-paged list: the cursors of the pages seen so far, so that
 * going back asks for the same page again. */
import { computed, ref } from "vue";

export function useCursorPages() {
  const cursors = ref<(string | null)[]>([null]);
  const index = ref(0);
  const cursor = computed(() => cursors.value[index.value] ?? null);

  /** To the page after the one shown, if the list said there is one (its `next_cursor`). */
  function forward(next: string | null | undefined): boolean {
    if (!next) return false;
    cursors.value = [...cursors.value.slice(0, index.value + 1), next];
    index.value += 1;
    return true;
  }

  /** To the page before, unless this is the first. */
  function back(): boolean {
    if (index.value === 0) return false;
    index.value -= 1;
    return true;
  }

  /** To the first page (new filters, another list). */
  function reset(): void {
    cursors.value = [null];
    index.value = 0;
  }

  /** The query of the page shown: the cursor only when it is not the first page. */
  function query(limit: number): { limit: number; cursor?: string } {
    return cursor.value ? { limit, cursor: cursor.value } : { limit };
  }

  return { index, cursor, forward, back, reset, query };
}
