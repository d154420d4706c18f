import i18n from '../i18n';

function locale(): string {
  return i18n.language === 'fr' ? 'fr-CA' : 'en-CA';
}

export function formatDateTime(iso?: string | null): string {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return new Intl.DateTimeFormat(locale(), { dateStyle: 'medium', timeStyle: 'short' }).format(d);
}

export function formatDate(iso?: string | null): string {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return new Intl.DateTimeFormat(locale(), { dateStyle: 'medium' }).format(d);
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${new Intl.NumberFormat(locale(), { maximumFractionDigits: i === 0 ? 0 : 1 }).format(v)} ${units[i]}`;
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
