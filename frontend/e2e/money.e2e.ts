// Money the way people read it, against a real `tamarack serve` (demo seed, the local pool) started WITHOUT card
// payments: the demo SME runs a sandbox (through the API, as the CLI would), then reads its wallet in English and in
// Canadian French, on a desktop and on a phone (390 px): amounts formatted by the page's locale with the credit's
// value, usage rolled up per sandbox per day, a line's detail view, the CSV download's contents, and the purchase
// form replaced by how to get credits. Every page state gets a screenshot and an axe check.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import en from '../src/locales/en.json';
import fr from '../src/locales/fr.json';
import { formatMoney } from '../src/api/money';
import { axe, cspViolations, DEMO_PASSWORD, launchBrowser, openPage, screenshot, serious, startServer, type Server } from './harness';

type Locale = typeof en;
const SME = 'sme@tamarack.demo';

let server: Server;
let browser: Browser;
let token = '';
let org = '';
let sandboxId = '';

async function api<T = any>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(`${server.url}/api/v1${path}`, {
    method,
    headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return (text ? JSON.parse(text) : undefined) as T;
}

async function poll<T>(what: string, ms: number, fn: () => Promise<T | null | undefined | false>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => null);
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}\n${server.output().slice(-3000)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

beforeAll(async () => {
  server = await startServer({ cards: false });
  browser = await launchBrowser();
  token = (await api<{ access_token: string }>('POST', '/identity/login', { email: SME, password: DEMO_PASSWORD })).access_token;
  const me = await api<{ active_organization_id?: string; memberships: { organization: { id: string } }[] }>('GET', '/identity/me');
  org = me.active_organization_id ?? me.memberships[0].organization.id;
  // A sandbox on the demo pool: launched, metered for a few usage intervals (--usage-interval 2s), stopped.
  const listings = await api<{ items: { id: string; kind: string; title: string }[] }>('GET', '/marketplace/listings?kind=compute');
  const listing = listings.items.find((l) => /H100/i.test(l.title)) ?? listings.items[0];
  const sb = await api<{ id: string }>('POST', '/testbed/sandboxes', { listing_id: listing.id, gpu_count: 1, template: 'shell', duration_minutes: 15 });
  sandboxId = sb.id;
  await poll('the sandbox to run', 90_000, async () => (await api<{ state: string }>('GET', `/testbed/sandboxes/${sandboxId}`)).state === 'running');
  await poll('usage to be charged', 60_000, async () => {
    const l = await api<{ items: unknown[] }>('GET', `/billing/orgs/${org}/transactions?kind=usage&sandbox_id=${sandboxId}`);
    return l.items.length > 0;
  });
  await api('POST', `/testbed/sandboxes/${sandboxId}/stop`);
  await poll('the sandbox to stop', 60_000, async () => (await api<{ state: string }>('GET', `/testbed/sandboxes/${sandboxId}`)).state === 'stopped');
}, 240_000);

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

async function check(page: Page, problems: string[], name: string) {
  await page.waitForFunction(() => !document.querySelector('.loading'), undefined, { timeout: 15_000 }).catch(() => undefined);
  await screenshot(page, name);
  expect(serious(await axe(page, name)), `${name}: serious accessibility violations`).toEqual([]);
  expect(cspViolations(problems), `${name}: CSP violations`).toEqual([]);
}

/** The fr-CA number parts: decimal comma, and a no-break space (U+00A0 or U+202F by ICU) before "crédits" and "$". */
const FR_MONEY = /^-?\d{1,3}(?:[\u00a0\u202f ]\d{3})*,\d{2}[\u00a0 ]crédits? \(-?\d{1,3}(?:[\u00a0\u202f ]\d{3})*,\d{2}[\u00a0 ]\$\)$/;
const EN_MONEY = /^-?\d{1,3}(?:,\d{3})*\.\d{2}[\u00a0 ]credits? \(-?\$\d{1,3}(?:,\d{3})*\.\d{2}\)$/;

for (const [lang, L, phone] of [
  ['en', en, false],
  ['fr', fr as Locale, false],
  ['en', en, true],
  ['fr', fr as Locale, true],
] as const) {
  describe(`wallet money, ${lang}, ${phone ? 'phone' : 'desktop'}`, () => {
    const shot = (n: string) => `money-${lang}-${phone ? 'phone' : 'desktop'}-${n}`;

    it('formats amounts in the locale, rolls usage up per sandbox per day, opens a line, downloads the CSV, and says how to get credits', async () => {
      const { context, page, problems } = await openPage(browser, server.url);
      try {
        await page.goto('/');
        if (lang === 'fr') {
          await page.getByRole('button', { name: en.header.switch_language_to.replace('{{language}}', 'Français') }).click();
          await page.waitForFunction(() => document.documentElement.lang === 'fr');
        }
        // The language switch is in the header at desktop width; the choice is remembered at phone width.
        if (phone) await page.setViewportSize({ width: 390, height: 844 });
        await page.goto('/signin');
        await page.getByLabel(L.signup.email).fill(SME);
        await page.getByLabel(L.signup.password, { exact: true }).fill(DEMO_PASSWORD);
        await page.getByRole('button', { name: L.signin.submit, exact: true }).click();
        await page.waitForURL((u) => !u.pathname.startsWith('/signin'));
        await page.goto('/wallet');
        await page.getByRole('heading', { name: L.wallet.title, level: 1 }).waitFor();

        // Balances in the page's locale, with their value in dollars.
        const available = page.getByTestId('available-money');
        await expect.poll(async () => (await available.textContent()) ?? '', { timeout: 15_000 }).toMatch(lang === 'fr' ? FR_MONEY : EN_MONEY);
        await page.getByTestId('credit-value').getByText(lang === 'fr' ? /1,00[\u00a0 ]\$/ : /\$1\.00/).waitFor();

        // Cards are off: no purchase form, and the page says how to get credits.
        await page.getByRole('heading', { name: L.money.get_credits, level: 2 }).waitFor();
        await page.getByText(L.money.cards_off).waitFor();
        expect(await page.getByRole('heading', { name: L.wallet.buy }).count()).toBe(0);
        expect(await page.getByRole('button', { name: L.wallet.checkout }).count()).toBe(0);

        // The sandbox's usage is one line per day, linked to the sandbox, in the locale.
        const usage = page.locator(`tr[data-kind="usage"]`, { has: page.getByRole('link', { name: sandboxId }) });
        await usage.first().waitFor({ timeout: 30_000 });
        const days = await usage.evaluateAll((rows) => rows.map((r) => r.getAttribute('data-line')));
        expect(new Set(days).size).toBe(days.length);
        // The page renders the API's integer with money.ts in its locale: the same text, character for character.
        const lineId0 = (await usage.first().getAttribute('data-line')) ?? '';
        const lines = await api<{ items: { id: string; amount_micro: number }[] }>('GET', `/billing/orgs/${org}/transactions?kind=usage&sandbox_id=${sandboxId}`);
        const settings = await api<{ credit_value: { currency: string; amount: string; micro: number } }>('GET', '/billing/settings');
        const line = lines.items.find((l) => l.id === lineId0);
        expect(line).toBeDefined();
        const amount = (await usage.first().getByTestId('amount').textContent()) ?? '';
        expect(amount).toMatch(lang === 'fr' ? FR_MONEY : EN_MONEY);
        expect(amount).toBe(formatMoney(line!.amount_micro, lang, settings.credit_value));
        await page.locator('tr[data-kind="grant"], tr[data-kind="purchase"]').first().waitFor();
        await check(page, problems, shot('wallet'));

        // Filter to usage only.
        await page.getByLabel(L.wallet.kind, { exact: true }).selectOption('usage');
        await expect.poll(async () => page.locator('tbody > tr[data-kind]:not([data-kind="usage"])').count()).toBe(0);
        await usage.first().waitFor();

        // The detail view: the metered samples behind the line.
        const lineId = (await usage.first().getAttribute('data-line')) ?? '';
        await usage.first().getByRole('button', { name: new RegExp(`^${L.money.details}`) }).click();
        const detail = page.locator(`[id="entries-${lineId}"]`);
        await detail.getByRole('table').waitFor();
        expect(await detail.locator('tbody tr').count()).toBeGreaterThan(0);
        await check(page, problems, shot('wallet-detail'));

        // The CSV of the filtered lines: a header row, exact decimals beside integer micro-credits.
        const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('csv').click()]);
        expect(download.suggestedFilename()).toMatch(/^transactions-.+\.csv$/);
        let text = '';
        for await (const c of await download.createReadStream()) text += (c as Buffer).toString();
        const rows = text.trim().split('\n').map((r) => r.split(','));
        expect(rows[0].slice(0, 2)).toEqual(['date', 'kind']);
        const head = rows[0];
        const body = rows.slice(1);
        expect(body.length).toBeGreaterThan(0);
        for (const r of body) {
          expect(r[head.indexOf('kind')]).toBe('usage');
          const credits = r[head.indexOf('amount_credits')];
          const micro = BigInt(r[head.indexOf('amount_micro')]);
          const [w, f = ''] = credits.replace('-', '').split('.');
          expect((BigInt(w) * 1_000_000n + BigInt(f.padEnd(6, '0'))) * (credits.startsWith('-') ? -1n : 1n)).toBe(micro);
        }
        expect(body.some((r) => r[head.indexOf('sandbox_id')] === sandboxId)).toBe(true);
      } finally {
        await context.close();
      }
    }, 120_000);
  });
}
