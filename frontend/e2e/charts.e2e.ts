// Charts and PDF documents against a real `tamarack serve` (demo seed, local pool, --usage-interval 2s): the SME
// runs a sandbox on the vendor's pool (through the API, as the CLI would), then the wallet (SME), the vendor's
// earnings page and the staff programme spend page show their charts with data, at desktop width and at 390 px,
// in English and in French. The wallet's receipt and statement links download PDFs. Every page gets a
// screenshot (test-results/screenshots/charts-*) and an axe check.

import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import en from '../src/locales/en.json';
import fr from '../src/locales/fr.json';
import { axe, cspViolations, DEMO_PASSWORD, launchBrowser, openPage, screenshot, serious, startServer, type Server, type Watched } from './harness';
import { Authenticator } from './totp';

type Locale = typeof en;
type Lang = 'en' | 'fr';
const LOCALES: Record<Lang, Locale> = { en, fr: fr as Locale };
const SME = 'sme@tamarack.demo';
const VENDOR = 'vendor@tamarack.demo';
const STAFF = 'staff@tamarack.demo';
const PARTNER = 'partner@tamarack.demo';
const LANG_KEY = 'tamarack.lang'; // src/i18n.ts's LANG_KEY (that module sets i18next up when imported)
const PHONE = { width: 390, height: 844 };
const DESKTOP = { width: 1280, height: 900 };

let server: Server;
let browser: Browser;
let staffAuth: Authenticator;

async function call<T>(method: string, path: string, token?: string, body?: unknown): Promise<T> {
  const res = await fetch(`${server.url}/api/v1${path}`, {
    method,
    headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return (text ? JSON.parse(text) : undefined) as T;
}

async function login(email: string): Promise<string> {
  const r = await call<{ access_token?: string; mfa_required?: boolean; mfa_token?: string }>('POST', '/identity/login', undefined, { email, password: DEMO_PASSWORD });
  if (r.mfa_required) {
    return (await call<{ access_token: string }>('POST', '/identity/login/mfa', undefined, { mfa_token: r.mfa_token, code: await staffAuth.code() })).access_token;
  }
  return r.access_token!;
}

async function poll<T>(what: string, ms: number, fn: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

let smeOrg = '';

beforeAll(async () => {
  server = await startServer();
  browser = await launchBrowser();

  // The SME runs a one-GPU sandbox on the demo pool until billing has charged some of it, then stops it.
  const sme = await login(SME);
  smeOrg = (await call<{ active_organization_id: string }>('GET', '/identity/me', sme)).active_organization_id;
  const listings = await call<{ items: { id: string; gpu_model: string }[] }>('GET', '/testbed/listings', sme);
  const listing = listings.items.find((l) => /h100/i.test(l.gpu_model));
  expect(listing, 'the demo seed publishes an H100 compute listing').toBeDefined();
  const sb = await call<{ id: string }>('POST', '/testbed/sandboxes', sme, { listing_id: listing!.id, gpu_model: listing!.gpu_model, gpu_count: 1, template: 'shell', duration_minutes: 15 });
  await poll('the sandbox to run', 90_000, async () => ((await call<{ state: string }>('GET', `/testbed/sandboxes/${sb.id}`, sme)).state === 'running' ? true : undefined));
  await poll('billing to charge the sandbox', 60_000, async () => {
    const c = await call<{ days: { charge_micro: number }[] }>('GET', `/billing/orgs/${smeOrg}/charts/spend`, sme);
    return c.days.some((d) => d.charge_micro > 0) ? true : undefined;
  });
  await call('POST', `/testbed/sandboxes/${sb.id}/stop`, sme);
  await poll('the sandbox to stop', 60_000, async () => ((await call<{ state: string }>('GET', `/testbed/sandboxes/${sb.id}`, sme)).state === 'stopped' ? true : undefined));

  // Staff act as staff only with a second factor: enrol an authenticator through the API.
  const staffPw = await login(STAFF);
  const enrol = await call<{ secret: string }>('POST', '/identity/mfa/totp', staffPw, { password: DEMO_PASSWORD });
  staffAuth = new Authenticator(enrol.secret);
  await call('POST', '/identity/mfa/totp/confirm', staffPw, { code: await staffAuth.code() });
}, 300_000);

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

async function check(a: Watched, name: string) {
  await a.page.waitForFunction(() => !document.querySelector('.loading'), undefined, { timeout: 15_000 }).catch(() => undefined);
  await screenshot(a.page, name);
  expect(serious(await axe(a.page, name)), `${name}: serious accessibility violations`).toEqual([]);
  expect(cspViolations(a.problems), `${name}: CSP violations`).toEqual([]);
}

async function actor(lang: Lang, viewport: { width: number; height: number }): Promise<Watched> {
  const a = await openPage(browser, server.url, viewport);
  await a.page.goto('/');
  if (lang === 'fr') {
    // On a phone the language switch is in the folded menu; the choice is what the switch remembers.
    await a.page.evaluate((key) => localStorage.setItem(key, 'fr'), LANG_KEY);
    await a.page.reload();
    await a.page.waitForFunction(() => document.documentElement.lang === 'fr');
  }
  return a;
}

async function signIn(p: Page, L: Locale, email: string, mfa = false) {
  await p.goto('/signin');
  await p.getByLabel(L.signup.email).fill(email);
  await p.getByLabel(L.signup.password, { exact: true }).fill(DEMO_PASSWORD);
  await p.getByRole('button', { name: L.signin.submit, exact: true }).click();
  if (mfa) {
    await p.getByLabel(L.mfa.code).fill(await staffAuth.code());
    await p.getByRole('button', { name: L.mfa.verify, exact: true }).click();
  }
  await p.waitForURL((u) => !u.pathname.startsWith('/signin'));
}

/** chartHasData waits for a chart section's summary and for bars or lines drawn in its picture. */
async function chartHasData(p: Page, testId: string, L: Locale, empty: string) {
  const section = p.getByTestId(testId);
  await section.getByRole('heading', { level: 2 }).waitFor();
  const img = section.locator('.chart__box[role=img]');
  await img.waitFor({ timeout: 20_000 });
  expect(await section.textContent()).not.toContain(empty);
  await expect.poll(() => section.locator('.recharts-bar-rectangle, .recharts-line-curve').count(), { timeout: 10_000 }).toBeGreaterThan(0);
  expect((await img.getAttribute('aria-label'))?.length ?? 0).toBeGreaterThan(20);
  await section.getByText(L.charts.show_data).click();
  expect(await section.locator('table tbody tr').count()).toBeGreaterThan(0);
}

async function expectPdf(p: Page, link: ReturnType<Page['getByRole']>) {
  const [download] = await Promise.all([p.waitForEvent('download'), link.click()]);
  const file = await download.path();
  const bytes = readFileSync(file!);
  expect(bytes.subarray(0, 5).toString('latin1')).toBe('%PDF-');
  const href = await link.getAttribute('href');
  expect(href).toMatch(/^\/api\/v1\/billing\/orgs\/[^/]+\/.+\.pdf$/);
}

const cases: [Lang, string, { width: number; height: number }][] = [
  ['en', 'desktop', DESKTOP],
  ['fr', 'desktop', DESKTOP],
  ['en', 'phone', PHONE],
  ['fr', 'phone', PHONE],
];

describe.each(cases)('charts (%s, %s)', (lang, size, viewport) => {
  const L = LOCALES[lang];
  const shot = (n: string) => `charts-${n}-${lang}-${size}`;

  it('the wallet charts the SME spend and links monthly statements as PDFs', async () => {
    const a = await actor(lang, viewport);
    try {
      await signIn(a.page, L, SME);
      await a.page.goto('/wallet');
      await a.page.getByRole('heading', { level: 1, name: L.wallet.title }).waitFor();
      await chartHasData(a.page, 'chart-spend', L, L.charts.spend_empty);
      await chartHasData(a.page, 'chart-by-sandbox', L, L.charts.spend_empty);
      await chartHasData(a.page, 'chart-by-listing', L, L.charts.spend_empty);
      const month = new Date().toISOString().slice(0, 7);
      const statement = a.page.getByTestId('statements').getByRole('link').first();
      await statement.waitFor();
      expect(await statement.getAttribute('href')).toBe(`/api/v1/billing/orgs/${smeOrg}/statements/${month}.pdf`);
      await check(a, shot('wallet'));
      await expectPdf(a.page, statement);
    } finally {
      await a.context.close();
    }
  });

  it('the partner downloads the receipt of its purchase', async () => {
    const a = await actor(lang, viewport);
    try {
      await signIn(a.page, L, PARTNER);
      await a.page.goto('/wallet');
      const receipt = a.page.getByTestId('receipts').getByRole('link', { name: new RegExp(L.documents.receipt.replace(/[()]/g, '\\$&')) }).first();
      await receipt.waitFor({ timeout: 15_000 });
      await check(a, shot('wallet-receipts'));
      await expectPdf(a.page, receipt);
    } finally {
      await a.context.close();
    }
  });

  it('the vendor sees earnings over time and the utilisation of its pool', async () => {
    const a = await actor(lang, viewport);
    try {
      await signIn(a.page, L, VENDOR);
      await a.page.goto('/vendor/earnings');
      await a.page.getByRole('heading', { level: 1, name: L.vendor.earnings_title }).waitFor();
      await chartHasData(a.page, 'chart-earnings', L, L.charts.earnings_empty);
      await chartHasData(a.page, 'chart-utilisation', L, L.charts.utilisation_empty);
      await check(a, shot('vendor-earnings'));
    } finally {
      await a.context.close();
    }
  });

  it('staff see programme spend and co-funding and the utilisation of every pool', async () => {
    const a = await actor(lang, viewport);
    try {
      await signIn(a.page, L, STAFF, true);
      await a.page.goto('/staff/spend');
      await a.page.getByRole('heading', { level: 1, name: L.staff.spend_title }).waitFor();
      await chartHasData(a.page, 'chart-programme', L, L.charts.programme_empty);
      await chartHasData(a.page, 'chart-utilisation', L, L.charts.utilisation_empty);
      await check(a, shot('staff-spend'));
    } finally {
      await a.context.close();
    }
  });
});

describe('documents over the API', () => {
  it('answer PDFs in the asked language and problem JSON for a bad or future month', async () => {
    const sme = await login(SME);
    const month = new Date().toISOString().slice(0, 7);
    for (const lang of ['en', 'fr']) {
      const res = await fetch(`${server.url}/api/v1/billing/orgs/${smeOrg}/statements/${month}.pdf`, { headers: { Authorization: `Bearer ${sme}`, 'Accept-Language': lang } });
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('application/pdf');
      expect(res.headers.get('content-language')).toBe(lang);
      expect(Buffer.from(await res.arrayBuffer()).subarray(0, 5).toString('latin1')).toBe('%PDF-');
    }
    for (const [m, code] of [['2026-13', 'invalid_month'], ['2999-01', 'future_month']]) {
      const res = await fetch(`${server.url}/api/v1/billing/orgs/${smeOrg}/statements/${m}.pdf`, { headers: { Authorization: `Bearer ${sme}` } });
      expect(res.headers.get('content-type')).toContain('application/problem+json');
      expect(((await res.json()) as { code: string }).code).toBe(code);
    }
  });
});
