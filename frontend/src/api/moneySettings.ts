// useMoneySettings reads GET /billing/settings once per page load (what a credit is worth, whether card payments
// are on) and shares the answer: it changes only when the platform restarts with other settings.
import { useEffect, useState } from 'react';
import { billing } from './endpoints';
import type { CreditValue } from './money';
import type { MoneySettings } from './types';

let cached: Promise<MoneySettings> | null = null;

/** loadMoneySettings fetches the settings once; a failure is retried on the next call. */
export function loadMoneySettings(): Promise<MoneySettings> {
  if (!cached) {
    cached = billing().settings();
    cached.catch(() => {
      cached = null;
    });
  }
  return cached;
}

/** useMoneySettings is the settings, or undefined while loading or after a failure (formatting then shows credits only). */
export function useMoneySettings(): MoneySettings | undefined {
  const [s, setS] = useState<MoneySettings>();
  useEffect(() => {
    let live = true;
    loadMoneySettings().then(
      (v) => live && setS(v),
      () => undefined,
    );
    return () => {
      live = false;
    };
  }, []);
  return s;
}

/** useCreditValue is the credit's value for formatMoney/formatCurrency, or undefined until known. */
export function useCreditValue(): CreditValue | undefined {
  return useMoneySettings()?.credit_value;
}
