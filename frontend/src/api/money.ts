// Money in the UI. Amounts arrive as integer micro-credits (1 credit = 1,000,000 µcr); the UI formats them itself
// in the page's locale (the API's `*_display` strings are not shown). Arithmetic is BigInt only, never floating
// point: the integer and fractional digits are computed exactly, rounded by the rule below, and only then given to
// Intl.NumberFormat, which formats an integer (grouping, sign, currency placement) whose fraction digits are
// replaced by the exact ones. What one credit is worth comes from GET /api/v1/billing/settings (CreditValue).
//
// Rounding rule: half away from zero, at the last digit shown (2.505 → 2.51, −2.505 → −2.51).
// Digits: amounts show two decimals; rates (`{ rate: true }`, prices per hour or per second) show the exact value
// with two to six decimals (micro-credits have six), trailing zeros trimmed.
//
// Exported API (stable; launch and other pages use it):
//   formatCredits(micro, locale, opts?)            "2.50 credits" / "2,50 crédits" (opts.unit = false: "2.50")
//   formatCurrency(micro, locale, creditValue, opts?) the credits' value in the programme's currency: "$2.50" / "2,50 $"
//   formatMoney(micro, locale, creditValue?, opts?) both: "2.50 credits ($2.50)" / "2,50 crédits (2,50 $)"
//   formatMicro(micro, locale)                      number only, exact (two to six decimals): "1,234.5678"
//   parseCredits, toMicro, sumMicro, estimateSandboxMicro: input and arithmetic helpers.

export const MICRO_PER_CREDIT = 1_000_000n;

export type MicroLike = bigint | number | string;

/** CreditValue is what one credit is worth: `micro` millionths of `currency` (ISO 4217), e.g. 1.00 CAD = 1,000,000. */
export interface CreditValue {
  currency: string;
  amount: string;
  micro: number;
}

export interface FormatOptions {
  /** Prices per hour or per second: show the exact value with up to six decimals (at least two). */
  rate?: boolean;
  /** formatCredits only: append the unit word ("credits", "crédits"); default true. */
  unit?: boolean;
}

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

/** intlLocale maps the UI's language ("en", "fr") to the Canadian locale the programme formats in. */
export function intlLocale(locale: string): string {
  if (locale.includes('-')) return locale;
  return locale === 'fr' ? 'fr-CA' : 'en-CA';
}

/**
 * roundScaled returns |value| / 10^scale rounded half away from zero to `digits` decimals, as whole part and
 * fraction digits, plus the sign. Exact: BigInt only.
 */
function roundScaled(value: bigint, scale: number, digits: number): { neg: boolean; whole: bigint; frac: string } {
  const neg = value < 0n;
  let abs = neg ? -value : value;
  if (digits < scale) {
    const drop = 10n ** BigInt(scale - digits);
    abs = (abs + drop / 2n) / drop;
  } else if (digits > scale) {
    abs *= 10n ** BigInt(digits - scale);
  }
  const unit = 10n ** BigInt(digits);
  const whole = abs / unit;
  const frac = digits > 0 ? (abs % unit).toString().padStart(digits, '0') : '';
  return { neg: neg && abs !== 0n, whole, frac };
}

/** exactDigits is how many of `scale` decimals are needed to show value exactly, at least min. */
function exactDigits(value: bigint, scale: number, min: number): number {
  let abs = value < 0n ? -value : value;
  let d = scale;
  while (d > min && abs % 10n === 0n) {
    abs /= 10n;
    d--;
  }
  return d;
}

/** formatParts formats sign, grouped whole part and exact fraction digits with Intl (options: currency etc.). */
function formatParts(neg: boolean, whole: bigint, frac: string, locale: string, options: Intl.NumberFormatOptions = {}): string {
  const nf = new Intl.NumberFormat(intlLocale(locale), { ...options, minimumFractionDigits: frac.length, maximumFractionDigits: frac.length });
  // Intl formats the integer (a BigInt, exact at any size); -0 keeps the sign of amounts between −1 and 0.
  const value: bigint | number = whole === 0n ? (neg ? -0 : 0) : neg ? -whole : whole;
  return nf
    .formatToParts(value)
    .map((p) => (p.type === 'fraction' ? frac : p.value))
    .join('');
}

function creditDigits(m: bigint, opts: FormatOptions): number {
  return opts.rate ? exactDigits(m, 6, 2) : 2;
}

/** unitWord is "credit(s)" / "crédit(s)" by the locale's plural rule (fr: singular below 2; en: only exactly 1). */
function unitWord(locale: string, whole: bigint, frac: string): string {
  const fr = intlLocale(locale).startsWith('fr');
  const one = fr ? whole < 2n : whole === 1n && frac === '';
  if (fr) return one ? 'crédit' : 'crédits';
  return one ? 'credit' : 'credits';
}

/** formatCredits renders micro-credits as credits: "2.50 credits", fr "2,50 crédits", "−1 234,50 crédits". */
export function formatCredits(v: MicroLike, locale = 'en', opts: FormatOptions = {}): string {
  const m = toMicro(v);
  const { neg, whole, frac } = roundScaled(m, 6, creditDigits(m, opts));
  const n = formatParts(neg, whole, frac, locale);
  return opts.unit === false ? n : `${n}\u00a0${unitWord(locale, whole, frac)}`;
}

/**
 * formatCurrency renders the value of micro-credits in the credit's currency: en "$2.50", fr "2,50 $". The value
 * is micro × creditValue.micro / 10^12 currency units, rounded half away from zero to the currency's decimals
 * (rates: up to six decimals, exact where six suffice).
 */
export function formatCurrency(v: MicroLike, locale: string, creditValue: CreditValue, opts: FormatOptions = {}): string {
  const m = toMicro(v) * BigInt(creditValue.micro); // in 10^-12 currency units
  const options: Intl.NumberFormatOptions = { style: 'currency', currency: creditValue.currency, currencyDisplay: 'narrowSymbol' };
  const currencyDigits = new Intl.NumberFormat('en', options).resolvedOptions().maximumFractionDigits ?? 2;
  let digits = currencyDigits;
  if (opts.rate) {
    const exact = roundScaled(m, 12, 6);
    const asMicro = (exact.whole * 1_000_000n + BigInt(exact.frac)) * (exact.neg ? -1n : 1n);
    digits = Math.max(currencyDigits, exactDigits(asMicro, 6, currencyDigits));
  }
  const { neg, whole, frac } = roundScaled(m, 12, digits);
  return formatParts(neg, whole, frac, locale, options);
}

/** formatMoney is credits with their value beside them when it is known: "2.50 credits ($2.50)". */
export function formatMoney(v: MicroLike, locale = 'en', creditValue?: CreditValue | null, opts: FormatOptions = {}): string {
  const c = formatCredits(v, locale, { ...opts, unit: true });
  return creditValue ? `${c} (${formatCurrency(v, locale, creditValue, opts)})` : c;
}

/**
 * formatMicro renders micro-credits as a number without a unit, exact: grouped whole credits and two to six
 * fractional digits (e.g. estimates and input fields' current values). Same as formatCredits(v, locale,
 * { rate: true, unit: false }).
 */
export function formatMicro(v: MicroLike, locale = 'en'): string {
  return formatCredits(v, locale, { rate: true, unit: false });
}

/** microToDecimal writes micro-credits as a plain decimal string for inputs and files ("1234.5", no grouping). */
export function microToDecimal(v: MicroLike): string {
  const m = toMicro(v);
  const { neg, whole, frac } = roundScaled(m, 6, exactDigits(m, 6, 2));
  return `${neg ? '-' : ''}${whole}.${frac}`;
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
