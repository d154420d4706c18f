// English and French. Every user-visible string lives in locales/{en,fr}.json; the choice is remembered in
// localStorage and mirrored on <html lang>.

import i18n from 'i18next';
import { initReactI18next } from 'react-i18next';
import en from './locales/en.json';
import fr from './locales/fr.json';

export const LANG_KEY = 'tamarack.lang';
export const LANGUAGES = ['en', 'fr'] as const;
export type Language = (typeof LANGUAGES)[number];

export function initialLanguage(): Language {
  try {
    const saved = localStorage.getItem(LANG_KEY);
    if (saved === 'en' || saved === 'fr') return saved;
  } catch {
    // storage disabled
  }
  if (typeof navigator !== 'undefined' && navigator.language?.toLowerCase().startsWith('fr')) return 'fr';
  return 'en';
}

export function setupI18n(lng: Language = initialLanguage()) {
  if (!i18n.isInitialized) {
    void i18n.use(initReactI18next).init({
      resources: { en: { translation: en }, fr: { translation: fr } },
      lng,
      fallbackLng: 'en',
      interpolation: { escapeValue: false },
      returnNull: false,
    });
    i18n.on('languageChanged', (l) => {
      document.documentElement.lang = l;
      try {
        localStorage.setItem(LANG_KEY, l);
      } catch {
        // ignore
      }
    });
  }
  document.documentElement.lang = i18n.language;
  return i18n;
}

export default i18n;
