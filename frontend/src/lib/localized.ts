// A listing's title and summary in the reader's language. Vendors write them in English and, optionally, in
// French (`title_fr`, `summary_fr`); a French reader sees the French text where there is one, everyone else the
// English, and each falls back to the other language when its own is empty. The language of the text actually
// shown is returned too, so that pages mark it (`lang`) for screen readers when it differs from the page's.

import { useTranslation } from 'react-i18next';

export interface Bilingual {
  title: string;
  summary?: string;
  title_fr?: string;
  summary_fr?: string;
}

export interface LocalText {
  text: string;
  lang: 'en' | 'fr';
}

function pick(en: string | undefined, fr: string | undefined, reader: string): LocalText {
  const wantFr = reader.toLowerCase().startsWith('fr');
  const e = en?.trim() ?? '';
  const f = fr?.trim() ?? '';
  if (wantFr) return f ? { text: f, lang: 'fr' } : { text: e, lang: 'en' };
  return e ? { text: e, lang: 'en' } : { text: f, lang: 'fr' };
}

/** localTitle is x's title in the reader's language (falling back to the other). */
export function localTitle(x: Bilingual, reader: string): LocalText {
  return pick(x.title, x.title_fr, reader);
}

/** localSummary is x's summary in the reader's language (falling back to the other). */
export function localSummary(x: Bilingual, reader: string): LocalText {
  return pick(x.summary, x.summary_fr, reader);
}

/** langAttr is the `lang` attribute a text needs on a page in `page`'s language (none when they agree). */
export function langAttr(t: LocalText, page: string): { lang?: string } {
  return page.toLowerCase().startsWith(t.lang) ? {} : { lang: t.lang };
}

/** useLocalText gives a listing's title and summary for the current UI language, with their `lang` attributes. */
export function useLocalText(x: Bilingual | undefined) {
  const { i18n } = useTranslation();
  const lang = i18n.language || 'en';
  const title = x ? localTitle(x, lang) : { text: '', lang: 'en' as const };
  const summary = x ? localSummary(x, lang) : { text: '', lang: 'en' as const };
  return { title, summary, titleLang: langAttr(title, lang), summaryLang: langAttr(summary, lang) };
}
