// Phones, languages and time zones against a real `tamarack serve` (demo seed):
// - every route of the app at 390×844 (a sandbox's page on a real sandbox of the SME's), signed out and as each demo role (SME buyer, vendor, staff with their
//   second factor), in English and in French: nothing scrolls sideways, each page gets a screenshot
//   (test-results/screenshots/lang-*) and an axe check;
// - a failed sign-in shows the server's problem in the page's language (the UI sends Accept-Language), the
//   English and French texts read from the server's own catalogues (platform/i18n/catalog);
// - the availability calendar's days start at the viewer's midnight: in America/Toronto and Asia/Tokyo
//   (Playwright's timezoneId) the first day starts at 00:00 local, the two starts differ, and the caption names
//   the zone.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import en from '../src/locales/en.json';
import fr from '../src/locales/fr.json';
import serverEn from '../../platform/i18n/catalog/en.json';
import serverFr from '../../platform/i18n/catalog/fr.json';
import { axe, cspViolations, DEMO_PASSWORD, launchBrowser, openPage, screenshot, serious, startServer, type Server, type Watched } from './harness';
import { Authenticator } from './totp';

type Locale = typeof en;
type Lang = 'en' | 'fr';
const LOCALES: Record<Lang, Locale> = { en, fr: fr as Locale };
const PHONE = { width: 390, height: 844 };

const SME = 'sme@tamarack.demo';
const VENDOR = 'vendor@tamarack.demo';
const STAFF = 'staff@tamarack.demo';

let server: Server;
let browser: Browser;
let staffAuth: Authenticator;
let computeListing = '';
let otherListing = '';
let vendorListing = '';
let smeToken = '';
let smeSandbox = '';

async function api(path: string, init: { method?: string; body?: unknown; token?: string; lang?: string } = {}) {
  const headers: Record<string, string> = { 'Content-Type': 'application/json' };
  if (init.token) headers.Authorization = `Bearer ${init.token}`;
  if (init.lang) headers['Accept-Language'] = init.lang;
  const res = await fetch(`${server.url}/api/v1${path}`, {
    method: init.method ?? 'GET',
    headers,
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  });
  const text = await res.text();
  return { res, body: text ? JSON.parse(text) : undefined };
}

beforeAll(async () => {
  server = await startServer();
  browser = await launchBrowser();
  // Staff act as staff only with a second factor: enrol one for the demo staff through the API.
  const login = await api('/identity/login', { method: 'POST', body: { email: STAFF, password: DEMO_PASSWORD } });
  expect(login.res.status).toBe(200);
  const token = login.body.access_token as string;
  const enrol = await api('/identity/mfa/totp', { method: 'POST', token, body: { password: DEMO_PASSWORD } });
  expect(enrol.res.status).toBe(201);
  staffAuth = new Authenticator(enrol.body.secret as string);
  const confirm = await api('/identity/mfa/totp/confirm', { method: 'POST', token, body: { code: await staffAuth.code() } });
  expect(confirm.res.status).toBeLessThan(300);
  const listings = await api('/marketplace/listings?limit=50');
  const items = listings.body.items as { id: string; kind: string }[];
  computeListing = items.find((l) => l.kind === 'compute')?.id ?? '';
  otherListing = items.find((l) => l.kind !== 'compute')?.id ?? '';
  expect(computeListing, 'the demo seed publishes a compute listing').not.toBe('');
  expect(otherListing, 'the demo seed publishes a model or dataset listing').not.toBe('');
  // The vendor's own listing, for its edit page (the demo vendor has no second factor).
  const vendorLogin = await api('/identity/login', { method: 'POST', body: { email: VENDOR, password: DEMO_PASSWORD } });
  const mine = await api('/marketplace/my/listings', { token: vendorLogin.body.access_token });
  vendorListing = (mine.body.items as { id: string }[])[0]?.id ?? '';
  expect(vendorListing, 'the demo vendor has a listing').not.toBe('');
  // A sandbox of the SME's, for its page (a real runc sandbox of the shell template on the demo pool).
  const smeLogin = await api('/identity/login', { method: 'POST', body: { email: SME, password: DEMO_PASSWORD } });
  smeToken = smeLogin.body.access_token as string;
  const launched = await api('/testbed/sandboxes', {
    method: 'POST', token: smeToken, body: { listing_id: computeListing, template: 'shell', gpu_count: 1, duration_minutes: 15 },
  });
  expect(launched.res.status, JSON.stringify(launched.body)).toBe(202);
  smeSandbox = launched.body.id as string;
});
afterAll(async () => {
  if (smeSandbox) await api(`/testbed/sandboxes/${smeSandbox}/stop`, { method: 'POST', token: smeToken });
  await browser?.close();
  await server?.stop();
});

/** open starts a phone-sized context in lang (the remembered choice of the language switch). */
async function open(lang: Lang, viewport = PHONE): Promise<Watched> {
  const a = await openPage(browser, server.url, viewport);
  await a.context.addInitScript((l) => localStorage.setItem('tamarack.lang', l), lang);
  return a;
}

async function signIn(a: Watched, L: Locale, email: string, auth?: Authenticator) {
  const p = a.page;
  await p.goto('/signin');
  await p.getByLabel(L.signup.email).fill(email);
  await p.getByLabel(L.signup.password, { exact: true }).fill(DEMO_PASSWORD);
  await p.getByRole('button', { name: L.signin.submit, exact: true }).click();
  if (auth) {
    await p.getByLabel(L.mfa.code).fill(await auth.code());
    await p.getByRole('button', { name: L.mfa.verify, exact: true }).click();
  }
  // On a phone the account controls are in the folded menu: wait for the page to leave /signin.
  await p.waitForURL((u) => !u.pathname.startsWith('/signin'), { timeout: 15_000 });
}

/** walk visits each path: it waits for the page's heading and data, then checks the width, axe and CSP. */
async function walk(a: Watched, lang: Lang, role: string, paths: string[]) {
  const p = a.page;
  for (const path of paths) {
    const name = `lang-${lang}-${role}${path.replace(/[^a-z0-9]+/gi, '-').replace(/-$/, '') || '-home'}`;
    await p.goto(path);
    await p.getByRole('heading', { level: 1 }).first().waitFor({ timeout: 15_000 });
    await p.waitForFunction(() => !document.querySelector('.loading'), undefined, { timeout: 15_000 }).catch(() => undefined);
    expect(await p.evaluate(() => document.documentElement.lang), `${path}: page language`).toBe(lang);
    const width = await p.evaluate(() => ({ scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth }));
    await screenshot(p, name);
    expect(width.scroll, `${lang} ${role} ${path} scrolls sideways (${width.scroll} > ${width.client})`).toBeLessThanOrEqual(width.client);
    expect(serious(await axe(p, name)), `${name}: serious accessibility violations`).toEqual([]);
    expect(cspViolations(a.problems), `${name}: CSP violations`).toEqual([]);
  }
}

const PUBLIC = () => ['/', '/catalogue', `/listings/${otherListing}`, `/listings/${computeListing}`, '/signin', '/signup',
  '/forgot-password', '/reset-password', '/verify-email', '/invitations/not-a-token', '/no-such-page'];
const SIGNED_IN = ['/profile', '/tokens', '/account/security', '/device', '/wallet', '/wallet/return', '/billing', '/entitlements', '/orders'];
const BUYER = ['/sandboxes', '/sandboxes/new', '/requests'];
const VENDOR_PAGES = () => ['/vendor/listings', '/vendor/listings/new', `/vendor/listings/${vendorListing}/edit`, '/vendor/access-requests',
  '/vendor/pools', '/vendor/earnings'];
const STAFF_PAGES = ['/staff/reviews', '/staff/organizations', '/staff/grants', '/staff/spend', '/staff/payments', '/staff/payouts', '/staff/audit'];

for (const lang of ['en', 'fr'] as const) {
  const L = LOCALES[lang];
  describe(`at 390 px, in ${lang === 'en' ? 'English' : 'French'}`, () => {
    it('a visitor: every public page fits', async () => {
      const a = await open(lang);
      await walk(a, lang, 'visitor', PUBLIC());
      await a.context.close();
    });
    it('the SME buyer: every page of theirs fits', async () => {
      const a = await open(lang);
      await signIn(a, L, SME);
      await walk(a, lang, 'sme', [...SIGNED_IN, ...BUYER, `/sandboxes/${smeSandbox}`, `/listings/${computeListing}`]);
      await a.context.close();
    });
    it('the vendor: every page of theirs fits', async () => {
      const a = await open(lang);
      await signIn(a, L, VENDOR);
      await walk(a, lang, 'vendor', [...VENDOR_PAGES(), '/profile', '/wallet']);
      await a.context.close();
    });
    it('staff, with their second factor: every staff page fits', async () => {
      const a = await open(lang);
      await signIn(a, L, STAFF, staffAuth);
      await walk(a, lang, 'staff', [...STAFF_PAGES, '/profile', `/listings/${computeListing}`]);
      await a.context.close();
    });
    it("a failed sign-in shows the server's problem in the page's language", async () => {
      const a = await open(lang);
      const p = a.page;
      await p.goto('/signin');
      await p.getByLabel(L.signup.email).fill(SME);
      await p.getByLabel(L.signup.password, { exact: true }).fill('not the password at all');
      await p.getByRole('button', { name: L.signin.submit, exact: true }).click();
      const catalogue = lang === 'fr' ? serverFr : serverEn;
      const title = catalogue['problem.invalid_credentials.title'];
      const other = (lang === 'fr' ? serverEn : serverFr)['problem.invalid_credentials.title'];
      await p.getByRole('alert').filter({ hasText: title }).waitFor({ timeout: 15_000 });
      expect(await p.getByText(other).count(), 'the other language must not show').toBe(0);
      await screenshot(p, `lang-${lang}-signin-refused`);
      // The code never changes with the language, and the answer says which language it is in.
      const direct = await api('/identity/login', { method: 'POST', body: { email: SME, password: 'wrong' }, lang: lang === 'fr' ? 'fr-CA' : 'en' });
      expect(direct.body.code).toBe('invalid_credentials');
      expect(direct.body.title).toBe(title);
      expect(direct.res.headers.get('content-language')).toBe(lang);
      await a.context.close();
    });
  });
}

describe('time zones', () => {
  it("the availability calendar's days start at the viewer's midnight and name the zone", async () => {
    const seen: Record<string, string> = {};
    for (const timezoneId of ['America/Toronto', 'Asia/Tokyo']) {
      const context = await browser.newContext({ baseURL: server.url, viewport: { width: 1280, height: 900 }, locale: 'en-CA', timezoneId });
      const p = await context.newPage();
      await p.goto(`/listings/${computeListing}`);
      const first = p.locator('table.calendar tbody th[scope=row]').first();
      await first.waitFor({ timeout: 15_000 });
      const start = (await first.getAttribute('data-start')) ?? '';
      const label = (await first.textContent()) ?? '';
      const at = new Date(start);
      // 00:00 on the viewer's clock, on the viewer's today.
      const clock = new Intl.DateTimeFormat('en-CA', { timeZone: timezoneId, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(at);
      expect(clock, `${timezoneId}: the first day starts at ${start}`).toBe('00:00');
      const today = new Intl.DateTimeFormat('en-CA', { timeZone: timezoneId, weekday: 'short', day: 'numeric', month: 'short' }).format(new Date());
      expect(label).toBe(today);
      const zone = new Intl.DateTimeFormat('en-CA', { timeZone: timezoneId, timeZoneName: 'short' }).formatToParts(at).find((x) => x.type === 'timeZoneName')?.value ?? '';
      expect(await p.locator('table.calendar caption').textContent()).toContain(zone);
      await screenshot(p, `lang-calendar-${timezoneId.replace('/', '-')}`);
      seen[timezoneId] = start;
      await context.close();
    }
    expect(seen['America/Toronto']).not.toBe(seen['Asia/Tokyo']);
  });
});
