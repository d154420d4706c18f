import i18n from '../i18n';

function locale(): string {
  return i18n.language === 'fr' ? 'fr-CA' : 'en-CA';
}

/**
 * The viewer's time zone (an IANA name such as America/Toronto), as the browser reports it. Every time the UI shows
 * is in this zone and names it (formatDateTime, formatTime), so that "14:00" never leaves a reader guessing.
 */
export function viewerTimeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
}

function toDate(v: string | number | Date): Date {
  return v instanceof Date ? v : new Date(v);
}

/** formatDateTime renders a date and time in the viewer's zone, with the zone's short name: "Dec 1, 2026, 7:00 a.m. EST". */
export function formatDateTime(iso?: string | number | Date | null): string {
  if (iso === undefined || iso === null || iso === '') return '—';
  const d = toDate(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  // dateStyle/timeStyle cannot be combined with timeZoneName: the fields are spelled out.
  return new Intl.DateTimeFormat(locale(), {
    year: 'numeric', month: 'short', day: 'numeric', hour: 'numeric', minute: '2-digit', timeZoneName: 'short',
  }).format(d);
}

/**
 * formatTime renders a time of day in the viewer's zone with the zone's short name ("7:00 a.m. EST", "07 h 00 HNE");
 * withDate adds the day and month (chart axes and tooltips spanning days).
 */
export function formatTime(iso: string | number | Date | null | undefined, withDate = false): string {
  if (iso === undefined || iso === null || iso === '') return '—';
  const d = toDate(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return new Intl.DateTimeFormat(locale(), {
    ...(withDate ? { month: 'short', day: 'numeric' } : {}),
    hour: 'numeric', minute: '2-digit', timeZoneName: 'short',
  }).format(d);
}

/** timeZoneLabel is the short name of the viewer's zone at a moment ("EST", "UTC+9"), for captions of time grids. */
export function timeZoneLabel(at: Date = new Date()): string {
  const part = new Intl.DateTimeFormat(locale(), { timeZoneName: 'short' }).formatToParts(at).find((p) => p.type === 'timeZoneName');
  return part?.value ?? viewerTimeZone();
}

/** formatDate renders a calendar date (no time, so no zone) in the viewer's zone. */
export function formatDate(iso?: string | null): string {
  if (!iso) return '—';
  // A bare yyyy-mm-dd is a calendar day, not midnight UTC: it must not shift a day west of Greenwich.
  const d = /^\d{4}-\d{2}-\d{2}$/.test(iso) ? new Date(`${iso}T12:00:00Z`) : new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const opts: Intl.DateTimeFormatOptions = { dateStyle: 'medium' };
  if (/^\d{4}-\d{2}-\d{2}$/.test(iso)) opts.timeZone = 'UTC';
  return new Intl.DateTimeFormat(locale(), opts).format(d);
}

/** formatBytes renders a size in powers of 1024: B, KiB, MiB, GiB in English; o, Ko, Mo, Go in French. */
export function formatBytes(n: number): string {
  const units = i18n.language === 'fr' ? ['o', 'Ko', 'Mo', 'Go', 'To'] : ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  // French puts a non-breaking space between a number and its unit.
  const sep = i18n.language === 'fr' ? '\u00a0' : ' ';
  return `${new Intl.NumberFormat(locale(), { maximumFractionDigits: i === 0 ? 0 : 1 }).format(v)}${sep}${units[i]}`;
}

/** formatDuration renders seconds as "2 h 05 min" / "45 min" / "30 s". */
export function formatDuration(totalSeconds: number): string {
  const s = Math.max(0, Math.floor(totalSeconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (h > 0) return `${h} h ${String(m).padStart(2, '0')} min`;
  if (m > 0) return `${m} min`;
  return `${s} s`;
}

export function formatNumber(n: number, maxFraction = 1): string {
  return new Intl.NumberFormat(locale(), { maximumFractionDigits: maxFraction }).format(n);
}

/** formatRating renders an average rating with one decimal (4.0 / 4,0). */
export function formatRating(n: number): string {
  return new Intl.NumberFormat(locale(), { minimumFractionDigits: 1, maximumFractionDigits: 1 }).format(n);
}

const RELATIVE_STEPS: [Intl.RelativeTimeFormatUnit, number][] = [
  ['second', 60],
  ['minute', 60],
  ['hour', 24],
  ['day', 30],
  ['month', 12],
  ['year', Infinity],
];

/**
 * formatRelative renders a time against now as "5 seconds ago" / "in 3 hours" ("il y a 5 secondes"). past: the time
 * cannot be in the future (a heartbeat), so a server clock slightly ahead of this one reads "now", not "in 2 seconds".
 */
export function formatRelative(iso: string | null | undefined, now: number = Date.now(), past = false): string {
  if (!iso) return '—';
  const t = new Date(iso).getTime();
  if (Number.isNaN(t)) return iso;
  let v = ((past ? Math.min(t, now) : t) - now) / 1000;
  let unit: Intl.RelativeTimeFormatUnit = 'second';
  for (const [u, size] of RELATIVE_STEPS) {
    unit = u;
    if (Math.abs(v) < size) break;
    v /= size;
  }
  return new Intl.RelativeTimeFormat(locale(), { numeric: 'auto' }).format(Math.round(v), unit);
}
