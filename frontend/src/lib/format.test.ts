// Formatting that follows the UI's language.

import { afterEach, describe, expect, it } from 'vitest';
import i18n, { setupI18n } from '../i18n';
import { formatBytes, formatDate, formatDateTime, formatRelative, formatTime, timeZoneLabel, viewerTimeZone } from './format';

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

describe('sizes and times for people', () => {
  it('writes sizes with B/KiB/MiB in English and o/Ko/Mo/Go in French', async () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(16 * 1024 * 1024)).toBe('16 MiB');
    await i18n.changeLanguage('fr');
    expect(formatBytes(512)).toBe('512\u00a0o');
    expect(formatBytes(1536)).toBe('1,5\u00a0Ko');
    expect(formatBytes(16 * 1024 * 1024)).toBe('16\u00a0Mo');
    expect(formatBytes(5 * 1024 ** 3)).toBe('5\u00a0Go');
  });
  it('names the zone of every time it shows', () => {
    const zone = timeZoneLabel(new Date('2026-12-01T12:00:00Z'));
    expect(zone).not.toBe('');
    expect(formatDateTime('2026-12-01T12:00:00Z')).toContain(zone);
    expect(formatTime('2026-12-01T12:00:00Z')).toContain(zone);
    expect(formatDateTime(null)).toBe('—');
    expect(viewerTimeZone()).not.toBe('');
  });
  it('keeps a bare calendar day on its day', () => {
    expect(formatDate('2026-12-01')).toContain('1');
    expect(formatDate('2026-12-01')).toContain('2026');
  });
});
