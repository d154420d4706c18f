import { useTranslation } from 'react-i18next';
import { LANGUAGES } from '../i18n';

/** LanguageSwitch toggles between English and French; i18n remembers the choice and updates <html lang>. */
export function LanguageSwitch() {
  const { t, i18n } = useTranslation();
  const current = i18n.language === 'fr' ? 'fr' : 'en';
  const other = LANGUAGES.find((l) => l !== current) ?? 'en';
  return (
    <button
      type="button"
      className="button button--quiet lang-switch"
      lang={other}
      onClick={() => void i18n.changeLanguage(other)}
      aria-label={t('header.switch_language_to', { language: t(`language.${other}`, { lng: other }) })}
    >
      {t(`language.${other}`, { lng: other })}
    </button>
  );
}
