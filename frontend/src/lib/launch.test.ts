import { describe, expect, it } from 'vitest';
import { leavesTerminal, terminalClosed } from '../components/Terminal';
import { reviewShortcut } from '../pages/Staff';
import { boundedDurations } from '../pages/Sandboxes';
import { cofundRule, cofundShare, holdMicro, ratePerHourMicro } from './sandboxCost';

const key = (code: string, mods: Partial<Record<'altKey' | 'shiftKey' | 'ctrlKey' | 'metaKey', boolean>> = {}) => ({
  altKey: false, shiftKey: false, ctrlKey: false, metaKey: false, code, ...mods,
});

describe('review shortcuts (WCAG 2.1.4)', () => {
  it('a single key decides nothing; Alt+Shift with a, r or c does', () => {
    expect(reviewShortcut(key('KeyA'))).toBeNull();
    expect(reviewShortcut(key('KeyA', { shiftKey: true }))).toBeNull();
    expect(reviewShortcut(key('KeyA', { altKey: true, shiftKey: true }))).toBe('approve');
    expect(reviewShortcut(key('KeyR', { altKey: true, shiftKey: true }))).toBe('reject');
    expect(reviewShortcut(key('KeyC', { altKey: true, shiftKey: true }))).toBe('request_changes');
    expect(reviewShortcut(key('KeyA', { altKey: true, shiftKey: true, ctrlKey: true }))).toBeNull();
  });
});

describe('terminal escape key (WCAG 2.1.2)', () => {
  const ev = (k: string, mods: Partial<Record<'altKey' | 'shiftKey' | 'ctrlKey' | 'metaKey', boolean>> = {}, type = 'keydown') => ({
    type, key: k, altKey: false, shiftKey: false, ctrlKey: false, metaKey: false, ...mods,
  });
  it('Ctrl+Shift+E leaves; Tab, Escape and Ctrl+E stay with the shell', () => {
    expect(leavesTerminal(ev('E', { ctrlKey: true, shiftKey: true }))).toBe(true);
    expect(leavesTerminal(ev('e', { ctrlKey: true, shiftKey: true }))).toBe(true);
    expect(leavesTerminal(ev('E', { ctrlKey: true, shiftKey: true }, 'keyup'))).toBe(false);
    expect(leavesTerminal(ev('Tab'))).toBe(false);
    expect(leavesTerminal(ev('Escape'))).toBe(false);
    expect(leavesTerminal(ev('e', { ctrlKey: true }))).toBe(false);
  });
});

describe('terminal close', () => {
  it('says try again later when the backend does not answer, disconnected otherwise', () => {
    expect(terminalClosed({ code: 1013, reason: "unavailable: the sandbox's backend is not answering; try again later" })).toBe('unavailable');
    expect(terminalClosed({ code: 1011, reason: 'the terminal could not start' })).toBe('closed');
    expect(terminalClosed({ code: 1000, reason: 'terminal closed' })).toBe('closed');
    expect(terminalClosed({ code: 1006, reason: '' })).toBe('closed');
  });
});

describe('launch form bounds and money', () => {
  it('offers durations within the listing, its maximum included', () => {
    expect(boundedDurations({ min_duration_minutes: 15, max_duration_minutes: 45 })).toEqual([15, 30, 45]);
    expect(boundedDurations({ min_duration_minutes: 15, max_duration_minutes: 1440 })).toEqual([15, 30, 60, 120, 240, 480, 1440]);
    expect(boundedDurations({ min_duration_minutes: 5, max_duration_minutes: 10 })).toEqual([10]);
    expect(boundedDurations({ min_duration_minutes: 20, max_duration_minutes: 20 })).toEqual([20]);
  });
  it('computes the rate, the hold and the co-funded share in integer micro-credits', () => {
    expect(ratePerHourMicro(2_500_000, 3)).toBe(7_500_000n);
    expect(holdMicro(2_500_000, 1, 15)).toBe(625_000n);
    expect(holdMicro(1, 1, 1)).toBe(1n); // rounded up, as the hold is
    const rule = cofundRule([
      { cofund_percent: 0, cap_micro: 0, cofunded_micro: 0 },
      { cofund_percent: 50, cap_micro: 10_000_000, cofunded_micro: 0, expired: true },
      { cofund_percent: 50, cap_micro: 10_000_000, cofunded_micro: 9_000_000 },
    ]);
    expect(rule).toEqual({ percent: 50, remainingMicro: 1_000_000n });
    expect(cofundShare(625_000n, rule)).toBe(312_500n);
    expect(cofundShare(5_000_000n, rule)).toBe(1_000_000n); // capped by what is left of the cap
    expect(cofundShare(5_000_000n, cofundRule([{ cofund_percent: 50, cap_micro: 1, cofunded_micro: 0, suspended: true }]))).toBe(0n);
  });
});
