// Sandbox money as people read it: the rate, the hold for the booked time, the cost so far and the projected
// total, all from integer micro-credits (BigInt, never floating point). creditText is the one place that turns
// micro-credits into text for the launch form and the sandbox page.

import { estimateSandboxMicro, formatCredits, toMicro, type MicroLike } from '../api/money';
import i18n from '../i18n';

/** creditText formats micro-credits in the interface's language, with the unit ("2.50 credits", "2,50 crédits"). */
export function creditText(micro: MicroLike | null | undefined, opts: { rate?: boolean } = {}): string {
  if (micro === null || micro === undefined) return '—';
  return formatCredits(micro, i18n.language, opts);
}

/** ratePerHourMicro is what gpuCount devices cost per hour at a per-GPU-hour price. */
export function ratePerHourMicro(pricePerGpuHourMicro: MicroLike, gpuCount: number): bigint {
  return toMicro(pricePerGpuHourMicro) * BigInt(gpuCount);
}

/** holdMicro is what billing holds for the booked time (rounded up, as the hold is). */
export function holdMicro(pricePerGpuHourMicro: MicroLike, gpuCount: number, minutes: number): bigint {
  return estimateSandboxMicro(pricePerGpuHourMicro, gpuCount, minutes);
}

export interface CofundRule {
  percent: number;
  remainingMicro: bigint;
}

/**
 * cofundShare is the part of an amount the programme pays under the co-funding grant billing applies (the first
 * unexpired, spendable grant with a co-funding percentage and cap left), capped by what is left of that cap.
 */
export function cofundShare(amount: bigint, rule: CofundRule | null): bigint {
  if (!rule || rule.percent <= 0 || amount <= 0n) return 0n;
  const share = (amount * BigInt(rule.percent)) / 100n;
  return share < rule.remainingMicro ? share : rule.remainingMicro;
}

/** cofundRule picks the co-funding grant of a wallet, as billing does when it charges usage. */
export function cofundRule(
  grants: { cofund_percent?: number; cap_micro?: number; cofunded_micro?: number; expired?: boolean; suspended?: boolean }[] | undefined,
): CofundRule | null {
  for (const g of grants ?? []) {
    const pct = g.cofund_percent ?? 0;
    const left = toMicro(g.cap_micro ?? 0) - toMicro(g.cofunded_micro ?? 0);
    if (pct > 0 && !g.expired && !g.suspended && left > 0n) return { percent: pct, remainingMicro: left };
  }
  return null;
}
