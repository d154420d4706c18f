// Formatting that follows the UI's language.

import { afterEach, describe, expect, it } from 'vitest';
import i18n, { setupI18n } from '../i18n';
import { formatRelative } from './format';

setupI18n('en');
afterEach(async () => {
  await i18n.changeLanguage('en');
});

describe('formatRelative', () => {
  const now = Date.parse('2026-12-01T12:00:00Z');
  it('picks the unit and follows the language', async () => {
    expect(formatRelative('2026-12-01T11:59:55Z', now)).toBe('5 seconds ago');
    expect(formatRelative('2026-12-01T11:57:00Z', now)).toBe('3 minutes ago');
    expect(formatRelative('2026-12-01T09:00:00Z', now)).toBe('3 hours ago');
    expect(formatRelative('2026-11-30T12:00:00Z', now)).toBe('yesterday');
    expect(formatRelative('2026-12-01T14:00:00Z', now)).toBe('in 2 hours');
    expect(formatRelative(null, now)).toBe('—');
    await i18n.changeLanguage('fr');
    expect(formatRelative('2026-12-01T11:59:55Z', now)).toBe('il y a 5 secondes');
  });
  it('reads a time that cannot be in the future (a heartbeat ahead of this clock) as now', () => {
    expect(formatRelative('2026-12-01T12:00:02Z', now, true)).toBe('now');
  });
});
