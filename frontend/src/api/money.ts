// Money in the UI: amounts arrive as integer micro-credits with a `*_display` string beside them. Show the display
// string; compute (estimates, sums) only with BigInt, never with floating point.

export const MICRO_PER_CREDIT = 1_000_000n;

export type MicroLike = bigint | number | string;

/** toMicro converts an integer amount from JSON to BigInt; a non-integer is a bug upstream and throws. */
export function toMicro(v: MicroLike): bigint {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) throw new RangeError(`not an integer micro-credit amount: ${v}`);
    return BigInt(v);
  }
  if (!/^-?\d+$/.test(v.trim())) throw new RangeError(`not an integer micro-credit amount: ${v}`);
  return BigInt(v.trim());
}

/**
 * formatMicro renders micro-credits for people when the API gave no display string (client-side estimates and
 * sums): grouped whole credits and up to six fractional digits, trailing zeros trimmed to at least two.
 */
export function formatMicro(v: MicroLike, locale = 'en'): string {
  const m = toMicro(v);
  const neg = m < 0n;
  const abs = neg ? -m : m;
  const whole = abs / MICRO_PER_CREDIT;
  let frac = (abs % MICRO_PER_CREDIT).toString().padStart(6, '0').replace(/0+$/, '');
  if (frac.length < 2) frac = frac.padEnd(2, '0');
  const grouped = new Intl.NumberFormat(locale, { useGrouping: true }).format(whole);
  const sep = locale.startsWith('fr') ? ',' : '.';
  return `${neg ? '-' : ''}${grouped}${sep}${frac}`;
}

/** display prefers the server's display string and falls back to formatting the micro amount. */
export function display(displayString: string | undefined | null, micro?: MicroLike | null, locale = 'en'): string {
  if (displayString) return displayString;
  if (micro === undefined || micro === null) return '—';
  return formatMicro(micro, locale);
}

/** parseCredits reads a decimal credit amount typed by a person ("12", "0.5", "1 234,25") into micro-credits. */
export function parseCredits(text: string): bigint | null {
  const s = text.replace(/[\s\u202f\u00a0]/g, '').replace(',', '.');
  const m = /^(-?)(\d*)(?:\.(\d{0,6}))?$/.exec(s);
  if (!m || (m[2] === '' && (m[3] === undefined || m[3] === ''))) return null;
  const whole = BigInt(m[2] || '0');
  const frac = BigInt((m[3] ?? '').padEnd(6, '0'));
  const v = whole * MICRO_PER_CREDIT + frac;
  return m[1] === '-' ? -v : v;
}

/**
 * estimateSandboxMicro is the cost of gpuCount devices for durationMinutes at a per-GPU-hour price, rounded up to
 * the micro-credit as the hold is (a hold never covers less than the time asked for).
 */
export function estimateSandboxMicro(pricePerGpuHourMicro: MicroLike, gpuCount: number, durationMinutes: number): bigint {
  const numerator = toMicro(pricePerGpuHourMicro) * BigInt(gpuCount) * BigInt(durationMinutes);
  return (numerator + 59n) / 60n;
}

export function sumMicro(values: MicroLike[]): bigint {
  return values.reduce<bigint>((acc, v) => acc + toMicro(v), 0n);
}
