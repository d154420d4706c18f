import { describe, expect, it } from 'vitest';
import {
  estimateSandboxMicro,
  formatCredits,
  formatCurrency,
  formatMicro,
  formatMoney,
  microToDecimal,
  parseCredits,
  sumMicro,
  toMicro,
  type CreditValue,
} from './money';

const CAD: CreditValue = { currency: 'CAD', amount: '1.00', micro: 1_000_000 };
const NBSP = '\u00a0';
// fr-CA groups thousands with a no-break space (U+00A0 or U+202F by ICU version): ask Intl which.
const NNBSP = new Intl.NumberFormat('fr-CA').formatToParts(1000).find((p) => p.type === 'group')?.value ?? ' ';

describe('money', () => {
  it('formats micro-credits exactly without floating point', () => {
    expect(formatMicro(0)).toBe('0.00');
    expect(formatMicro(1_500_000)).toBe('1.50');
    expect(formatMicro(1_234_567_890_123n)).toBe('1,234,567.890123');
    expect(formatMicro(-250_000)).toBe('-0.25');
    // Past Number.MAX_SAFE_INTEGER: a float would print ...992 or ...994.
    expect(formatMicro('9007199254740993000000')).toBe('9,007,199,254,740,993.00');
  });

  it('formats credits in English and Canadian French', () => {
    expect(formatCredits(2_500_000, 'en')).toBe(`2.50${NBSP}credits`);
    expect(formatCredits(2_500_000, 'fr')).toBe(`2,50${NBSP}crédits`);
    expect(formatCredits(1_234_500_000, 'fr')).toBe(`1${NNBSP}234,50${NBSP}crédits`);
    expect(formatCredits(1_000_000, 'en')).toBe(`1.00${NBSP}credits`);
    expect(formatCredits(1_500_000, 'fr')).toBe(`1,50${NBSP}crédit`);
    expect(formatCredits(2_500_000, 'fr-CA', { unit: false })).toBe('2,50');
  });

  it('formats negative and large amounts', () => {
    expect(formatCredits(-2_500_000, 'en')).toBe(`-2.50${NBSP}credits`);
    expect(formatCredits(-1_234_500_000, 'fr', { unit: false })).toBe(`-1${NNBSP}234,50`);
    expect(formatCredits(-4_000, 'en', { unit: false })).toBe('-0.00'.replace('-', '')); // rounds to zero: no sign
    expect(formatCredits(-5_000, 'en', { unit: false })).toBe('-0.01');
    expect(formatCredits(9_223_372_036_854_775_807n, 'en', { unit: false })).toBe('9,223,372,036,854.78');
  });

  it('rounds half away from zero at the last digit shown', () => {
    expect(formatCredits(2_505_000, 'en', { unit: false })).toBe('2.51');
    expect(formatCredits(2_504_999, 'en', { unit: false })).toBe('2.50');
    expect(formatCredits(-2_505_000, 'en', { unit: false })).toBe('-2.51');
    expect(formatCredits(999_995_000, 'en', { unit: false })).toBe('1,000.00');
  });

  it('shows rates with up to six decimals', () => {
    expect(formatCredits(1_234_567, 'en', { rate: true })).toBe(`1.234567${NBSP}credits`);
    expect(formatCredits(2_500_000, 'fr', { rate: true })).toBe(`2,50${NBSP}crédits`);
    expect(formatCredits(833, 'fr', { rate: true, unit: false })).toBe('0,000833');
  });

  it('formats the value in the programme currency', () => {
    expect(formatCurrency(2_500_000, 'en', CAD)).toBe('$2.50');
    expect(formatCurrency(2_500_000, 'fr', CAD)).toBe(`2,50${NBSP}$`);
    expect(formatCurrency(1_234_500_000, 'fr', CAD)).toBe(`1${NNBSP}234,50${NBSP}$`);
    expect(formatCurrency(-2_500_000, 'en', CAD)).toBe('-$2.50');
    // 1 credit = 1.25 EUR; 0.333333 credits = 0.41666625 EUR → 0.42
    const eur: CreditValue = { currency: 'EUR', amount: '1.25', micro: 1_250_000 };
    expect(formatCurrency(333_333, 'en', eur)).toBe('€0.42');
    expect(formatCurrency(833, 'en', CAD, { rate: true })).toBe('$0.000833');
    // Zero-decimal currencies round to the unit.
    expect(formatCurrency(1_500_000, 'en', { currency: 'JPY', amount: '100.00', micro: 100_000_000 })).toBe('¥150');
  });

  it('puts both together', () => {
    expect(formatMoney(2_500_000, 'en', CAD)).toBe(`2.50${NBSP}credits ($2.50)`);
    expect(formatMoney(2_500_000, 'fr', CAD)).toBe(`2,50${NBSP}crédits (2,50${NBSP}$)`);
    expect(formatMoney(2_500_000, 'en')).toBe(`2.50${NBSP}credits`);
  });

  it('writes plain decimals for inputs and files', () => {
    expect(microToDecimal(1_234_500_000)).toBe('1234.50');
    expect(microToDecimal(-1)).toBe('-0.000001');
  });

  it('parses typed credit amounts', () => {
    expect(parseCredits('12')).toBe(12_000_000n);
    expect(parseCredits('0.5')).toBe(500_000n);
    expect(parseCredits('2,5')).toBe(2_500_000n);
    expect(parseCredits('1 000.000001')).toBe(1_000_000_001n);
    expect(parseCredits('.25')).toBe(250_000n);
    expect(parseCredits('1.0000001')).toBeNull();
    expect(parseCredits('abc')).toBeNull();
    expect(parseCredits('')).toBeNull();
  });

  it('rejects non-integer micro amounts', () => {
    expect(() => toMicro(1.5)).toThrow(RangeError);
    expect(() => toMicro('1.5')).toThrow(RangeError);
    expect(toMicro('42')).toBe(42n);
  });

  it('estimates a sandbox hold exactly, rounding up to the micro-credit', () => {
    // 2.5 credits per GPU-hour, 2 GPUs, 90 minutes = 7.5 credits
    expect(estimateSandboxMicro(2_500_000, 2, 90)).toBe(7_500_000n);
    // 1 micro-credit per GPU-hour for 1 minute rounds up to 1
    expect(estimateSandboxMicro(1, 1, 1)).toBe(1n);
    // 0.1 + 0.2 style amounts stay exact
    expect(sumMicro([100_000, 200_000])).toBe(300_000n);
  });
});
