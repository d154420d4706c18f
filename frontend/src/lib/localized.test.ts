import { describe, expect, it } from 'vitest';
import { langAttr, localSummary, localTitle } from './localized';

describe('localTitle and localSummary', () => {
  const both = { title: 'Maple model', summary: 'Forecasts', title_fr: 'Modèle érable', summary_fr: 'Prévisions' };
  it('shows the reader’s language', () => {
    expect(localTitle(both, 'fr')).toEqual({ text: 'Modèle érable', lang: 'fr' });
    expect(localTitle(both, 'fr-CA')).toEqual({ text: 'Modèle érable', lang: 'fr' });
    expect(localTitle(both, 'en')).toEqual({ text: 'Maple model', lang: 'en' });
    expect(localSummary(both, 'fr')).toEqual({ text: 'Prévisions', lang: 'fr' });
  });
  it('falls back to the other language when one is missing', () => {
    expect(localTitle({ title: 'Maple model' }, 'fr')).toEqual({ text: 'Maple model', lang: 'en' });
    expect(localSummary({ title: 'x', summary: 'Forecasts', summary_fr: '  ' }, 'fr')).toEqual({ text: 'Forecasts', lang: 'en' });
    expect(localSummary({ title: 'x', summary: '', summary_fr: 'Prévisions' }, 'en')).toEqual({ text: 'Prévisions', lang: 'fr' });
  });
  it('marks text in the other language', () => {
    expect(langAttr({ text: 'Maple', lang: 'en' }, 'fr')).toEqual({ lang: 'en' });
    expect(langAttr({ text: 'Maple', lang: 'en' }, 'en')).toEqual({});
  });
});
