/** The interface's words: Simplified Chinese by default, English on request (kept per browser).
 * Each page's words live in messages/<page>.ts as { "zh-CN": {...}, en: {...} } under the
 * page's name. */
import { createI18n } from "vue-i18n";

import type { Locale } from "../lib/format";

type Messages = { [key: string]: Messages | string };
type PageMessages = { "zh-CN": Messages; en: Messages };

const modules = import.meta.glob<{ default: Record<string, PageMessages> }>("./messages/*.ts",
                                                                              { eager: true });

export function mergeMessages(pages: Record<string, PageMessages>[]
): Record<Locale, Record<string, Messages>> {
  const merged: Record<Locale, Record<string, Messages>> = { "zh-CN": {}, en: {} };
  for (const page of pages) {
    for (const [name, words] of Object.entries(page)) {
      merged["zh-CN"][name] = words["zh-CN"];
      merged.en[name] = words.en;
    }
  }
  return merged;
}

export const LOCALE_STORAGE = "fuli.console.locale";

export function savedLocale(): Locale {
  return localStorage.getItem(LOCALE_STORAGE) === "en" ? "en" : "zh-CN";
}

export const i18n = createI18n({
  legacy: false,
  locale: savedLocale(),
  fallbackLocale: "zh-CN",
  messages: mergeMessages(Object.values(modules).map((module) => module.default)),
});

export function setLocale(locale: Locale): void {
  i18n.global.locale.value = locale;
  localStorage.setItem(LOCALE_STORAGE, locale);
  document.documentElement.lang = locale;
}
