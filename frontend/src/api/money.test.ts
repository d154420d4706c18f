import { describe, expect, it } from 'vitest';
import { display, estimateSandboxMicro, formatMicro, parseCredits, sumMicro, toMicro } from './money';

describe('money', () => {
  it('formats micro-credits without floating point', () => {
    expect(formatMicro(0)).toBe('0.00');
    expect(formatMicro(1_500_000)).toBe('1.50');
    expect(formatMicro(1_234_567_890_123n)).toBe('1,234,567.890123');
    expect(formatMicro(-250_000)).toBe('-0.25');
    expect(formatMicro('9007199254740993000000')).toBe('9,007,199,254,740,993.00');
  });

  it('uses a French decimal comma', () => {
    expect(formatMicro(1_500_000, 'fr')).toBe('1,50');
  });

  it('prefers the display string from the API', () => {
    expect(display('12.50 credits', 1)).toBe('12.50 credits');
    expect(display(undefined, 2_000_000)).toBe('2.00');
    expect(display(null, null)).toBe('—');
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
