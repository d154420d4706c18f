// The journey of issue 6 against a real `tamarack serve` (demo seed, stripe-mock), in English and then in French:
// a vendor signs up and is verified by staff, drafts a dataset listing, uploads a file (progress bar, sha256),
// submits; staff request changes; the vendor fixes and resubmits; staff approve; an SME finds it by search, orders
// it and downloads the file; a partner buys credits through Stripe Checkout (a signed webhook credits them); the
// SME launches a sandbox, runs a command in the terminal, stops it and sees the charge in its wallet.
// Every main page gets a screenshot (test-results/screenshots) and an axe check; CSP violations fail.
//
// UI strings come from the locale files, so the French pass asserts the French text the pages render.

import { createHash, createHmac, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import en from '../src/locales/en.json';
import fr from '../src/locales/fr.json';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { axe, cspViolations, DEMO_PASSWORD, SCREENSHOT_DIR, launchBrowser, openPage, screenshot, serious, startAgent, startServer, type Agent, type Server } from './harness';
import { Authenticator } from './totp';

type Locale = typeof en;
type Lang = 'en' | 'fr';
const LOCALES: Record<Lang, Locale> = { en, fr: fr as Locale };

/** tr renders a locale string with {{name}} placeholders. */
function tr(s: string, vars: Record<string, string | number> = {}): string {
  return s.replace(/\{\{(\w+)\}\}/g, (_, k: string) => String(vars[k] ?? ''));
}
function esc(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

const PASSWORD = 'correct horse battery staple';
const STAFF = 'staff@tamarack.demo';
const SME = 'sme@tamarack.demo';
const PARTNER = 'partner@tamarack.demo';

interface Actor {
  context: BrowserContext;
  page: Page;
  problems: string[];
}

let server: Server;
let browser: Browser;

beforeAll(async () => {
  rmSync(SCREENSHOT_DIR, { recursive: true, force: true });
  server = await startServer();
  browser = await launchBrowser();
});
afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

/** check screenshots the page and fails on serious accessibility violations and CSP refusals. */
async function check(a: Actor, name: string) {
  await a.page.waitForFunction(() => !document.querySelector('.loading'), undefined, { timeout: 15_000 }).catch(() => undefined);
  await screenshot(a.page, name);
  expect(serious(await axe(a.page, name)), `${name}: serious accessibility violations`).toEqual([]);
  expect(cspViolations(a.problems), `${name}: CSP violations`).toEqual([]);
}

/** visit opens a page, waits for its heading, then checks it. */
async function visit(a: Actor, path: string, name: string) {
  await a.page.goto(path);
  await a.page.getByRole('heading', { level: 1 }).first().waitFor();
  await check(a, name);
}

async function actor(lang: Lang): Promise<Actor> {
  const a = await openPage(browser, server.url);
  await a.page.goto('/');
  if (lang === 'fr') {
    // The language switch, as a person would use it; the choice is remembered for the rest of the session.
    await a.page.getByRole('button', { name: tr(en.header.switch_language_to, { language: 'Français' }) }).click();
    await a.page.waitForFunction(() => document.documentElement.lang === 'fr');
  }
  return a;
}

async function signIn(a: Actor, L: Locale, email: string, password = DEMO_PASSWORD, phone = false) {
  await a.page.goto('/signin');
  await a.page.getByLabel(L.signup.email).fill(email);
  await a.page.getByLabel(L.signup.password, { exact: true }).fill(password);
  await a.page.getByRole('button', { name: L.signin.submit, exact: true }).click();
  // On a phone the account controls are in the folded menu (hidden): wait for the page to leave /signin.
  if (phone) await a.page.waitForURL((u) => !u.pathname.startsWith('/signin'));
  else await a.page.getByRole('button', { name: L.header.sign_out }).waitFor();
}

// Staff act as staff only in sessions signed in with a second factor. The demo seed enrols no authenticator: the
// first test that needs staff enrols one through the security page (enrolStaff), as a person would, and every
// later staff sign-in computes its code from the secret the page showed.
let staffAuth: Authenticator | null = null;
let staffRecovery: string[] = [];

/** enrolStaff turns on two-step sign-in for the demo staff on the security page, checking each step. */
async function enrolStaff(a: Actor, L: Locale) {
  const p = a.page;
  await signIn(a, L, STAFF); // the password alone: no authenticator yet
  await visit(a, '/account/security', 'security-off');
  await p.getByRole('button', { name: L.security.turn_on }).click();
  await p.getByLabel(L.signup.password, { exact: true }).fill(DEMO_PASSWORD);
  await p.getByRole('button', { name: L.security.continue, exact: true }).click();
  await p.getByRole('img', { name: L.security.qr_label }).waitFor();
  const secret = await p.getByLabel(L.security.secret, { exact: true }).inputValue();
  expect(await p.getByLabel(L.security.uri, { exact: true }).inputValue()).toMatch(/^otpauth:\/\/totp\/.*secret=/);
  await check(a, 'security-scan');
  const auth = new Authenticator(secret);
  await p.getByLabel(L.security.first_code).fill(await auth.code());
  await p.getByRole('button', { name: L.security.confirm, exact: true }).click();
  const codes = p.getByTestId('recovery-codes').getByRole('listitem');
  await expect.poll(() => codes.count()).toBe(10);
  staffRecovery = await codes.allTextContents();
  staffAuth = auth;
  await p.getByRole('button', { name: L.security.download_codes }).waitFor();
  await check(a, 'security-recovery-codes');
  // This session predates the authenticator: sign in again for one that counts as two-step.
  await p.getByRole('button', { name: L.security.sign_in_again }).click();
  await p.waitForURL((u) => u.pathname === '/signin');
}

async function ensureStaffMFA(): Promise<Authenticator> {
  if (!staffAuth) {
    const a = await actor('en');
    await enrolStaff(a, en);
    await a.context.close();
  }
  return staffAuth!;
}

/** staffSignIn signs the demo staff in with the password and then a code of the authenticator. */
async function staffSignIn(a: Actor, L: Locale) {
  const auth = await ensureStaffMFA();
  const p = a.page;
  await p.goto('/signin');
  await p.getByLabel(L.signup.email).fill(STAFF);
  await p.getByLabel(L.signup.password, { exact: true }).fill(DEMO_PASSWORD);
  await p.getByRole('button', { name: L.signin.submit, exact: true }).click();
  await p.getByLabel(L.mfa.code).fill(await auth.code());
  await p.getByRole('button', { name: L.mfa.verify, exact: true }).click();
  await p.getByRole('button', { name: L.header.sign_out }).waitFor();
}

/** staffToken is an access token of a two-step API sign-in of the demo staff. */
async function staffToken(): Promise<string> {
  const auth = await ensureStaffMFA();
  const post = async (path: string, body: unknown) => {
    const res = await fetch(`${server.url}/api/v1${path}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
    const text = await res.text();
    if (!res.ok) throw new Error(`POST ${path}: ${res.status} ${text}`);
    return JSON.parse(text);
  };
  const challenge = await post('/identity/login', { email: STAFF, password: DEMO_PASSWORD });
  expect(challenge.mfa_required).toBe(true);
  return (await post('/identity/login/mfa', { mfa_token: challenge.mfa_token, code: await auth.code() })).access_token as string;
}

/**
 * mailLink waits for an e-mail to `to` in the server's file outbox (<data>/outbox-mail, one .eml per message)
 * holding a link to the UI page `page`, and returns that link's path and query. With several, the newest wins.
 */
/** mailsTo reads the bodies of the outbox's e-mails to `to`, oldest first. */
function mailsTo(to: string): string[] {
  const dir = join(server.dataDir!, 'outbox-mail');
  return (existsSync(dir) ? readdirSync(dir).sort() : [])
    .map((f) => readFileSync(join(dir, f), 'utf8'))
    .filter((body) => new RegExp(`^To: ${esc(to)}\\r?$`, 'm').test(body));
}

async function mailLink(to: string, page: string): Promise<string> {
  const re = new RegExp(`/${page}\\?token=([^\\s]+)`);
  let link = '';
  await expect
    .poll(
      () => {
        const found = mailsTo(to)
          .map((body) => re.exec(body)?.[1])
          .filter((t): t is string => !!t);
        link = found.length ? `/${page}?token=${found[found.length - 1]}` : '';
        return link;
      },
      { timeout: 15_000 },
    )
    .not.toBe('');
  return link;
}

/** signWebhook signs a Stripe event the way Stripe does: v1 = HMAC-SHA256("<t>.<payload>") with the secret. */
function signWebhook(payload: string, secret: string, at = Math.floor(Date.now() / 1000)): string {
  const v1 = createHmac('sha256', secret).update(`${at}.${payload}`).digest('hex');
  return `t=${at},v1=${v1}`;
}

/** revokeAgentsOf revokes, through the API, every agent of the demo vendor's pool of that name that is not revoked. */
async function revokeAgentsOf(poolName: string) {
  const call = async (token: string, method: string, path: string) => {
    const res = await fetch(`${server.url}/api/v1${path}`, { method, headers: { Authorization: `Bearer ${token}` } });
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
    return res.json();
  };
  const login = await fetch(`${server.url}/api/v1/identity/login`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ email: 'vendor@tamarack.demo', password: DEMO_PASSWORD }),
  });
  const token = (await login.json()).access_token as string;
  const pools = (await call(token, 'GET', '/testbed/pools')).items as { id: string; name: string }[];
  for (const p of pools.filter((x) => x.name === poolName)) {
    for (const a of (await call(token, 'GET', `/testbed/pools/${p.id}/agents`)).items as { id: string; state: string }[]) {
      if (a.state !== 'revoked') await call(token, 'DELETE', `/testbed/pools/${p.id}/agents/${a.id}`);
    }
  }
}

function journey(lang: Lang, opts: { requestChanges: boolean }) {
  const L = LOCALES[lang];
  const unique = `${lang}${Date.now().toString(36)}`;
  const vendorOrg = `Prairie Data ${unique}`;
  const vendorEmail = `vendor-${unique}@example.ca`;
  const title = `Wheat rust images ${unique}`;
  const fileName = `rust-${unique}.csv`;
  // A file large enough for the upload to show its progress bar under the throttled upload below.
  const fileBody = Buffer.concat([Buffer.from('field,plot,rust_score\n'), randomBytes(1536 * 1024)]);
  const fileSha = createHash('sha256').update(fileBody).digest('hex');
  const shot = (name: string) => `${lang}-${name}`;

  let vendor: Actor;
  let staff: Actor;
  let sme: Actor;
  let partner: Actor;
  let listingUrl = '';

  describe.sequential(`journey (${lang})`, () => {
    afterAll(async () => {
      for (const a of [vendor, staff, sme, partner]) await a?.context.close();
    });

    it('a visitor browses the home page and the catalogue', async () => {
      const v = await actor(lang);
      await visit(v, '/', shot('home'));
      await visit(v, '/catalogue', shot('catalogue'));
      expect(await v.page.getByRole('heading', { name: L.catalogue.title, level: 1 }).isVisible()).toBe(true);
      await visit(v, '/signin', shot('signin'));
      await v.context.close();
    });

    it('a vendor signs up', async () => {
      vendor = await actor(lang);
      await visit(vendor, '/signup', shot('signup'));
      await vendor.page.getByLabel(new RegExp(`^${esc(L.org_kind.vendor)}`)).check();
      await vendor.page.getByLabel(L.signup.org_name).fill(vendorOrg);
      await vendor.page.getByLabel(L.signup.name, { exact: true }).fill('Val Vendor');
      await vendor.page.getByLabel(L.signup.email).fill(vendorEmail);
      await vendor.page.getByLabel(L.signup.password, { exact: true }).fill(PASSWORD);
      await vendor.page.getByRole('button', { name: L.signup.submit }).click();
      await vendor.page.getByRole('button', { name: L.header.sign_out }).waitFor();
      await visit(vendor, '/vendor/listings', shot('vendor-listings-empty'));
      await vendor.page.getByText(L.vendor.no_listings).waitFor();
      // Until the link of the verification e-mail is opened, every page says so.
      const banner = vendor.page.getByRole('region', { name: L.verify.banner_label });
      await banner.getByText(tr(L.verify.banner, { email: vendorEmail })).waitFor();
      if (server.dataDir) {
        await vendor.page.goto(await mailLink(vendorEmail, 'verify-email'));
        await vendor.page.getByText(tr(L.verify.done, { email: vendorEmail })).waitFor();
        await check(vendor, shot('verify-email'));
        await vendor.page.getByRole('link', { name: L.verify.continue }).click();
        await vendor.page.getByRole('heading', { name: L.catalogue.title, level: 1 }).waitFor();
        await banner.waitFor({ state: 'detached' });
      }
    });

    it('staff verify the new vendor organisation', async () => {
      staff = await actor(lang);
      await staffSignIn(staff, L);
      await visit(staff, '/staff/organizations', shot('staff-organizations'));
      await staff.page.getByRole('button', { name: tr(L.staff.verify_named, { name: vendorOrg }) }).click();
      const row = staff.page.locator(`tr[data-org="${vendorOrg}"]`);
      // The list shows unverified organisations by default: the verified one leaves it.
      await row.waitFor({ state: 'detached' });
    });

    it('the vendor drafts a dataset listing with a live preview, uploads a file and submits it', async () => {
      const p = vendor.page;
      await visit(vendor, '/vendor/listings/new', shot('vendor-editor-new'));
      await p.getByLabel(L.editor.kind).selectOption('dataset');
      await p.getByLabel(L.editor.title, { exact: true }).fill(title);
      await p.getByLabel(L.editor.summary, { exact: true }).fill('Leaf images of wheat rust scored by agronomists.');
      await p.getByLabel(L.editor.format, { exact: true }).fill('csv');
      await p.getByLabel(L.listing.tags, { exact: true }).fill('agriculture, images');
      await p.getByLabel(L.editor.card).fill('## Intended use\n\nTraining rust detectors.');
      await p.getByRole('region', { name: L.editor.preview }).getByRole('heading', { name: 'Intended use' }).waitFor();
      await p.getByRole('button', { name: L.editor.create }).click();
      await p.waitForURL(/\/vendor\/listings\/[^/]+\/edit$/);
      listingUrl = p.url().replace(server.url, '').replace(/\/vendor\/listings\/([^/]+)\/edit$/, '/listings/$1');

      // A slow upload link, so that the progress bar is seen before the server's sha256 replaces it.
      const cdp = await vendor.context.newCDPSession(p);
      await cdp.send('Network.enable');
      await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 1024 * 1024 });
      await p.getByLabel(L.editor.upload).setInputFiles({ name: fileName, mimeType: 'text/csv', buffer: fileBody });
      const bar = p.getByRole('progressbar');
      await bar.waitFor();
      await expect.poll(async () => Number(await bar.getAttribute('value')), { timeout: 10_000 }).toBeGreaterThan(0);
      await screenshot(p, shot('vendor-upload-progress'));
      const row = p.locator(`tr[data-artifact="${fileName}"]`);
      await row.waitFor({ timeout: 30_000 });
      await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 });
      await expect.poll(() => row.textContent()).toContain(fileSha);
      await expect.poll(() => row.textContent()).toContain(L.editor.hash_match);
      await check(vendor, shot('vendor-editor-draft'));

      await p.getByRole('button', { name: L.vendor.submit }).click();
      await p.getByText(L.editor.submitted).waitFor();
      await p.getByText(L.state.submitted, { exact: true }).first().waitFor();
    });

    if (opts.requestChanges) {
      it('staff request changes with a comment', async () => {
        const p = staff.page;
        await visit(staff, '/staff/reviews', shot('staff-reviews'));
        await p.getByRole('button', { name: new RegExp(esc(title)) }).click();
        await p.getByRole('heading', { name: new RegExp(esc(title)), level: 2 }).waitFor();
        await p.getByLabel(new RegExp(`^${esc(L.staff.decision_request_changes)}`)).check();
        await p.getByLabel(L.staff.comment).fill('Please state the licence of the images in the card.');
        await p.getByRole('button', { name: L.staff.send_request_changes, exact: true }).click();
        await p.getByRole('button', { name: new RegExp(esc(title)) }).waitFor({ state: 'detached' });
      });

      it('the vendor reads the comment, fixes the card and resubmits', async () => {
        const p = vendor.page;
        await visit(vendor, '/vendor/listings', shot('vendor-listings'));
        const row = p.locator('tr', { hasText: title });
        await row.getByText(L.state.changes_requested).waitFor();
        await row.getByText('Please state the licence of the images in the card.').waitFor();
        await row.getByRole('link', { name: L.common.edit }).click();
        await p.getByText('Please state the licence of the images in the card.').waitFor();
        await p.getByLabel(L.editor.card).fill('## Intended use\n\nTraining rust detectors.\n\n## Licence\n\nCC-BY-4.0 for every image.');
        await p.getByRole('button', { name: L.common.save, exact: true }).click();
        await p.getByText(L.editor.saved).waitFor();
        await p.getByRole('button', { name: L.vendor.submit }).click();
        await p.getByText(L.editor.submitted).waitFor();
      });
    }

    it('staff see the diff and approve with the keyboard shortcut', async () => {
      const p = staff.page;
      if (opts.requestChanges) {
        // The queue has stayed open since the request for changes: the resubmission appears without a reload.
        expect(p.url()).toContain('/staff/reviews');
        await p.getByRole('button', { name: new RegExp(esc(title)) }).waitFor({ timeout: 25_000 });
        await check(staff, shot('staff-review-queue'));
      } else {
        await visit(staff, '/staff/reviews', shot('staff-review-queue'));
      }
      await p.getByRole('button', { name: new RegExp(esc(title)) }).click();
      await p.getByRole('heading', { name: new RegExp(esc(title)), level: 2 }).waitFor();
      if (opts.requestChanges) await p.getByLabel(L.staff.card_diff).getByText('CC-BY-4.0 for every image.').waitFor();
      await check(staff, shot('staff-review-diff'));
      await p.locator('body').click({ position: { x: 5, y: 5 } }); // focus out of any field
      await p.keyboard.press('Alt+Shift+KeyA'); // the approve shortcut needs its modifiers (WCAG 2.1.4)
      await p.getByRole('button', { name: new RegExp(esc(title)) }).waitFor({ state: 'detached' });
    });

    it('an SME finds the dataset by search, orders it and downloads the file', async () => {
      sme = await actor(lang);
      await signIn(sme, L, SME);
      const p = sme.page;
      await p.goto('/catalogue');
      await p.getByRole('searchbox', { name: L.catalogue.search_label }).fill(`rust ${unique}`);
      await p.getByRole('button', { name: L.catalogue.search, exact: true }).click();
      await p.getByRole('link', { name: title }).waitFor();
      await check(sme, shot('catalogue-search'));
      await p.getByRole('link', { name: title }).click();
      await p.getByRole('heading', { name: title, level: 1 }).waitFor();
      expect(p.url()).toContain(listingUrl);
      await check(sme, shot('listing'));
      await p.getByRole('button', { name: tr(L.listing.order_plan, { plan: 'Free' }) }).click();
      await p.getByText(tr(L.listing.ordered, { state: L.state.fulfilled })).waitFor();

      await visit(sme, '/entitlements', shot('entitlements'));
      const [download] = await Promise.all([
        p.waitForEvent('download'),
        p.getByRole('button', { name: tr(L.access.download, { name: fileName }) }).click(),
      ]);
      const got = await download.createReadStream().then(async (s) => {
        const chunks: Buffer[] = [];
        for await (const c of s) chunks.push(c as Buffer);
        return Buffer.concat(chunks);
      });
      expect(download.suggestedFilename()).toBe(fileName);
      expect(createHash('sha256').update(got).digest('hex')).toBe(fileSha);
      await visit(sme, '/orders', shot('orders'));
      await p.getByRole('link', { name: title }).waitFor(); // orders name the listing

      // Entitled now, the SME rates the dataset.
      await p.goto(listingUrl);
      await p.getByLabel(L.listing.your_rating).selectOption('4');
      await p.getByLabel(L.listing.review_body).fill('Clean labels.');
      await p.getByRole('button', { name: L.listing.send_rating }).click();
      await p.getByText(L.listing.rated).waitFor();
      await p.getByText(tr(L.listing.rating_summary_one, { average: lang === 'fr' ? '4,0' : '4.0', count: 1 })).waitFor();
    });

    it('a partner buys credits through Stripe Checkout; the signed webhook credits the wallet', async () => {
      expect(server.webhookSecret, 'stripe-mock is needed: install it (go install github.com/stripe/stripe-mock@v0.203.0)').toBeTruthy();
      partner = await actor(lang);
      await signIn(partner, L, PARTNER);
      const p = partner.page;
      await visit(partner, '/wallet', shot('wallet-partner'));
      const before = await p.getByTestId('available').first().textContent();
      // stripe-mock's checkout URL is no real page: Stripe would send the browser back to the success URL.
      let stripeUrl = '';
      let co: { purchase_id: string; session_id: string; checkout_url: string } | null = null;
      await p.route('**/api/v1/billing/checkout', async (route) => {
        const resp = await route.fetch();
        co = (await resp.json()) as typeof co;
        expect(resp.status()).toBe(201);
        await route.fulfill({ response: resp });
      });
      await p.route(
        (u) => !u.href.startsWith(server.url),
        (route) => {
          stripeUrl = route.request().url();
          return route.fulfill({ status: 303, headers: { location: `${server.url}/billing?purchase=${co!.purchase_id}&status=success` } });
        },
      );
      await p.getByLabel(L.wallet.credits, { exact: true }).fill('100');
      await p.getByRole('button', { name: L.wallet.checkout }).click();
      await p.waitForURL(/\/billing\?purchase=/);
      if (!co) throw new Error('no checkout answer');
      const { purchase_id, session_id, checkout_url, cad_cents } = co as {
        purchase_id: string;
        session_id: string;
        checkout_url: string;
        cad_cents: number;
      };
      expect(stripeUrl).toBe(checkout_url);
      await p.getByRole('heading', { name: L.wallet.return_title, level: 1 }).waitFor();

      const payload = JSON.stringify({
        id: `evt_${unique}`,
        object: 'event',
        api_version: '2023-10-16',
        type: 'checkout.session.completed',
        created: Math.floor(Date.now() / 1000),
        data: {
          object: {
            id: session_id,
            object: 'checkout.session',
            client_reference_id: purchase_id,
            payment_status: 'paid',
            payment_intent: `pi_${unique}`,
            mode: 'payment',
            currency: 'cad',
            amount_total: cad_cents,
          },
        },
      });
      const hook = await fetch(`${server.url}/api/v1/billing/stripe/webhook`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'Stripe-Signature': signWebhook(payload, server.webhookSecret!) },
        body: payload,
      });
      expect(hook.status, await hook.clone().text()).toBe(200);
      expect(((await hook.json()) as { outcome: string }).outcome).toBe('credited');
      // The return page polls the wallet: the credits appear without a reload.
      const credited = (b: string | null) => Number((b ?? '').replace(/[^\d.,]/g, '').replace(/\s/g, '').replace(',', '.').replace(/\.(?=.*\.)/g, ''));
      await expect.poll(async () => credited(await p.getByTestId('available').textContent()), { timeout: 15_000 }).toBe(credited(before) + 100);
      await check(partner, shot('checkout-return'));
      await visit(partner, '/wallet', shot('wallet-after-purchase'));
      await p.locator('tr[data-kind="purchase"]').first().waitFor();
    });

    it('the SME launches a sandbox, runs a command in the terminal, stops it and sees the charge', async () => {
      const p = sme.page;
      await visit(sme, '/catalogue?kind=compute', shot('catalogue-compute'));
      await p.getByRole('link', { name: /H100-80GB/ }).first().click();
      await p.getByRole('heading', { level: 1 }).waitFor();
      await p.getByRole('table', { name: /h100-80gb/ }).waitFor();
      await check(sme, shot('listing-compute'));
      await p.getByRole('link', { name: L.listing.launch }).click();
      await p.getByRole('heading', { name: L.sandbox.launch_title, level: 1 }).waitFor();
      await p.getByLabel(L.sandbox.template).selectOption('shell');
      await p.getByLabel(L.sandbox.duration).selectOption('15');
      await expect.poll(() => p.getByTestId('estimate').textContent()).toMatch(/0[.,]6/); // 2.50 per GPU-hour × 15 min
      await check(sme, shot('sandbox-launch'));
      await p.getByRole('button', { name: L.sandbox.launch, exact: true }).click();
      await p.waitForURL(/\/sandboxes\/[^/]+$/);
      await p.getByTestId('sandbox-state').getByText(L.state.running).waitFor({ timeout: 60_000 });
      await p.getByText(L.sandbox.terminal_open).waitFor({ timeout: 20_000 });

      const term = p.getByRole('application', { name: L.sandbox.terminal });
      await term.click();
      await p.keyboard.type('echo hello-$((6*7))\n');
      const rows = p.locator('.xterm-accessibility-tree');
      await expect.poll(() => rows.textContent(), { timeout: 20_000 }).toContain('hello-42');
      await check(sme, shot('sandbox-running'));

      await p.getByRole('button', { name: L.sandbox.stop, exact: true }).click();
      await p.getByRole('dialog').getByRole('button', { name: L.sandbox.stop_confirm }).click();
      await p.getByTestId('sandbox-state').getByText(L.state.stopped).waitFor({ timeout: 60_000 });
      const charge = p.getByTestId('charge');
      await expect.poll(async () => (await charge.textContent()) ?? '', { timeout: 30_000 }).toMatch(/\d/);
      await check(sme, shot('sandbox-stopped'));

      await visit(sme, '/sandboxes', shot('sandboxes'));
      await p.goto('/wallet');
      // Usage is metered into the ledger asynchronously: the transactions list refreshes itself.
      await p.locator('tr[data-kind="usage"]').first().waitFor({ timeout: 45_000 });
      await check(sme, shot('wallet-sme'));
      // This month's statement, as CSV.
      const [csv] = await Promise.all([p.waitForEvent('download'), p.getByRole('button', { name: L.wallet.download_csv }).click()]);
      const text = await csv.createReadStream().then(async (st) => {
        let out = '';
        for await (const c of st) out += (c as Buffer).toString();
        return out;
      });
      expect(text.split('\n')[0]).toContain('transfer_id');
      expect(text).toContain('usage');
    });

    it('every other main page renders for its role', async () => {
      for (const [a, path, name] of [
        [vendor, '/vendor/access-requests', 'vendor-access-requests'],
        [vendor, '/vendor/pools', 'vendor-pools'],
        [vendor, '/profile', 'profile'],
        [vendor, '/tokens', 'tokens'],
        [staff, '/staff/grants', 'staff-grants'],
        [staff, '/staff/spend', 'staff-spend'],
        [staff, '/staff/payments', 'staff-payments'],
        [staff, '/staff/payouts', 'staff-payouts'],
        [staff, '/staff/audit', 'staff-audit'],
      ] as const) {
        await visit(a, path, shot(name));
      }
    });
  });
}

describe.sequential('two-step sign-in', () => {
  it('staff without two-step sign-in are told to turn it on, with a link to the security page', async () => {
    const a = await actor('en');
    const p = a.page;
    await signIn(a, en, STAFF);
    await p.goto('/staff/reviews');
    const alert = p.getByRole('alert').filter({ hasText: en.mfa.required_title });
    await alert.waitFor();
    await check(a, 'staff-mfa-required');
    await alert.getByRole('link', { name: en.mfa.required_link }).click();
    await p.getByRole('heading', { name: en.security.title, level: 1 }).waitFor();
    await p.getByRole('button', { name: en.security.turn_on }).waitFor();
    await a.context.close();
  });

  it('staff turn on two-step sign-in on the security page: QR code, secret, first code, recovery codes', async () => {
    const a = await actor('en');
    await enrolStaff(a, en);
    await a.context.close();
  });

  it('sign-in asks for the code: a wrong code is refused, the right one signs in and staff pages work', async () => {
    const auth = await ensureStaffMFA();
    const a = await actor('en');
    const p = a.page;
    await p.goto('/signin');
    await p.getByLabel(en.signup.email).fill(STAFF);
    await p.getByLabel(en.signup.password, { exact: true }).fill(DEMO_PASSWORD);
    await p.getByRole('button', { name: en.signin.submit, exact: true }).click();
    const code = p.getByLabel(en.mfa.code);
    await code.waitFor();
    await expect.poll(() => code.evaluate((el) => el === document.activeElement)).toBe(true);
    await check(a, 'signin-code');
    await code.fill(auth.wrongCode());
    await p.getByRole('button', { name: en.mfa.verify, exact: true }).click();
    await p.getByRole('alert').filter({ hasText: en.mfa.error_wrong_code }).waitFor();
    expect(await code.inputValue()).toBe('');
    await check(a, 'signin-code-wrong');
    await code.fill(await auth.code());
    await p.getByRole('button', { name: en.mfa.verify, exact: true }).click();
    await p.getByRole('button', { name: en.header.sign_out }).waitFor();
    await visit(a, '/staff/reviews', 'staff-reviews-mfa');
    expect(await p.getByText(en.mfa.required_title).count()).toBe(0);
    await a.context.close();
  });

  it('a recovery code signs in once and the security page counts one fewer', async () => {
    await ensureStaffMFA();
    const a = await actor('en');
    const p = a.page;
    await p.goto('/signin');
    await p.getByLabel(en.signup.email).fill(STAFF);
    await p.getByLabel(en.signup.password, { exact: true }).fill(DEMO_PASSWORD);
    await p.getByRole('button', { name: en.signin.submit, exact: true }).click();
    await p.getByRole('button', { name: en.mfa.use_recovery }).click();
    await p.getByLabel(en.mfa.recovery_code).fill(staffRecovery.shift()!);
    await check(a, 'signin-recovery-code');
    await p.getByRole('button', { name: en.mfa.verify, exact: true }).click();
    await p.getByRole('button', { name: en.header.sign_out }).waitFor();
    await visit(a, '/account/security', 'security-on');
    await p.getByText(tr(en.security.codes_left_other, { count: 9 })).waitFor();
    await a.context.close();
  });
});

describe.sequential('quality', () => {
  it('the SME ends its session on another device from the security page; that device is sent to sign in', async () => {
    // The second device announces itself as Firefox on Windows, so its row is told apart from the SME's other sessions.
    const ua = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0';
    const a = await actor('en');
    const context = await browser.newContext({ baseURL: server.url, viewport: { width: 1280, height: 900 }, locale: 'en-CA', userAgent: ua });
    const b: Actor = { context, page: await context.newPage(), problems: [] };
    const refused: string[] = [];
    b.page.on('response', (r) => {
      if (r.status() === 401 && r.url().includes('/api/v1/')) refused.push(new URL(r.url()).pathname);
    });
    await signIn(b, en, SME);
    await signIn(a, en, SME);
    const p = a.page;
    await visit(a, '/account/security', 'security-sessions');
    const table = p.getByRole('table', { name: en.security.sessions_caption });
    const mine = table.locator('tr[data-current]');
    await mine.getByText(en.security.sessions_this_device).waitFor();
    expect(await mine.getByRole('button').count()).toBe(0);
    const other = table.getByRole('row').filter({ hasText: 'Firefox on Windows' });
    await other.waitFor();
    await other.getByRole('button', { name: /^Sign out Firefox on Windows/ }).click();
    await other.getByRole('group').getByRole('button', { name: en.security.session_sign_out, exact: true }).click();
    await p.getByText(tr(en.security.session_ended, { device: 'Firefox on Windows' })).waitFor();
    await expect.poll(() => table.getByRole('row').filter({ hasText: 'Firefox on Windows' }).count()).toBe(0);
    await check(a, 'security-sessions-ended');

    // The other device's next API call is refused (its access token revoked within moments, its refresh token
    // ended) and it lands on the sign-in page; moving between two pages retries until the revocation has landed.
    const q = b.page;
    await q.goto('/wallet');
    const nav = (name: string) => q.getByRole('link', { name, exact: true }).first();
    for (let i = 0; i < 20 && new URL(q.url()).pathname !== '/signin'; i++) {
      await nav(i % 2 ? en.nav.wallet : en.nav.orders).click({ timeout: 2_000 }).catch(() => undefined);
      await q.waitForURL((u) => u.pathname === '/signin', { timeout: 500 }).catch(() => undefined);
    }
    expect(new URL(q.url()).pathname).toBe('/signin');
    await q.getByRole('button', { name: en.signin.submit, exact: true }).waitFor();
    expect(refused.length).toBeGreaterThan(0);
    // The first device is still signed in.
    await p.goto('/wallet');
    await p.getByRole('button', { name: en.header.sign_out }).waitFor();
    expect(new URL(p.url()).pathname).toBe('/wallet');
    await b.context.close();
    await a.context.close();
  });

  it('shows the problem title and each field message beside its field', async () => {
    const a = await actor('en');
    const p = a.page;
    await p.goto('/signup');
    await p.getByLabel(en.signup.org_name).fill('X');
    await p.getByLabel(en.signup.name, { exact: true }).fill('Someone');
    await p.getByLabel(en.signup.email).fill('not-an-email');
    await p.getByLabel(en.signup.password, { exact: true }).fill('short');
    await p.getByRole('button', { name: en.signup.submit }).click();
    const alert = p.getByRole('alert').first();
    await alert.waitFor();
    expect(await alert.textContent()).toMatch(/\S/);
    // Each bad field is marked invalid and described by its message.
    for (const label of [en.signup.email, en.signup.password]) {
      const input = p.getByLabel(label, { exact: true });
      await expect.poll(() => input.getAttribute('aria-invalid')).toBe('true');
      const described = (await input.getAttribute('aria-describedby')) ?? '';
      const msg = await p.locator(`#${described.split(' ').find((x) => x.endsWith('-error'))}`).textContent();
      expect(msg, `${label} message`).toMatch(/\S/);
    }
    await check(a, 'signup-errors');
    await a.context.close();
  });

  // A newcomer signed up in the browser; the reset test below changes this account's password.
  const newcomer = `sme-${Date.now().toString(36)}@example.ca`;

  it('a newcomer sees the verification banner, a too-early resend is explained, buying asks to verify first; bad and good links', async () => {
    const a = await actor('en');
    const p = a.page;
    await p.goto('/signup');
    await p.getByLabel(en.signup.org_name).fill(`Newcomer Farms ${Date.now().toString(36)}`);
    await p.getByLabel(en.signup.name, { exact: true }).fill('Nel Newcomer');
    await p.getByLabel(en.signup.email).fill(newcomer);
    await p.getByLabel(en.signup.password, { exact: true }).fill(PASSWORD);
    await p.getByRole('button', { name: en.signup.submit }).click();
    const banner = p.getByRole('region', { name: en.verify.banner_label });
    await banner.getByText(tr(en.verify.banner, { email: newcomer })).waitFor();
    // The sign-up mail went out a moment ago: the server answers 429 too_many_emails, said kindly with the wait.
    await banner.getByRole('button', { name: en.verify.resend }).click();
    await banner.getByText(new RegExp(esc(en.verify.too_many_other).replace(esc('{{count}}'), '\\d+'))).waitFor();
    await check(a, 'verify-banner');

    // Buying credits is refused (403 email_unverified): the alert says what to do and offers a new link.
    await visit(a, '/wallet', 'wallet-unverified');
    await p.getByLabel(en.wallet.credits, { exact: true }).fill('10');
    await p.getByRole('button', { name: en.wallet.checkout }).click();
    const alert = p.getByRole('alert').filter({ hasText: en.verify.required_title });
    await alert.waitFor();
    expect(await alert.getByRole('button', { name: en.verify.resend }).isVisible()).toBe(true);
    await check(a, 'wallet-email-unverified');

    await p.goto('/verify-email?token=not-a-real-token');
    await p.getByText(en.verify.invalid_title).waitFor();
    // The resend button comes with the restored session, which a fresh page load brings a moment later.
    await p.getByRole('alert').getByRole('button', { name: en.verify.resend }).waitFor();
    await check(a, 'verify-email-invalid');

    if (server.dataDir) {
      await p.goto(await mailLink(newcomer, 'verify-email'));
      await p.getByText(tr(en.verify.done, { email: newcomer })).waitFor();
      await banner.waitFor({ state: 'detached' });
      // Verified for good: a fresh page load shows no banner either.
      await p.goto('/profile');
      await p.getByRole('heading', { name: en.profile.title, level: 1 }).waitFor();
      expect(await banner.count()).toBe(0);
    }
    await a.context.close();
  });

  it('forgot password: the link from the e-mail sets a new password that signs in', async () => {
    if (!server.dataDir) return;
    const a = await actor('en');
    const p = a.page;
    await p.goto('/signin');
    await p.getByRole('link', { name: en.signin.forgot }).click();
    await p.getByRole('heading', { name: en.forgot.title, level: 1 }).waitFor();
    await p.getByLabel(en.signup.email).fill(newcomer);
    await p.getByRole('button', { name: en.forgot.submit }).click();
    await p.getByText(tr(en.forgot.sent, { email: newcomer })).waitFor();
    await check(a, 'forgot-password');

    await p.goto(await mailLink(newcomer, 'reset-password'));
    await p.getByRole('heading', { name: en.reset.title, level: 1 }).waitFor();
    const field = p.getByLabel(en.reset.password, { exact: true });
    // The sign-up rules apply, their message beside the field.
    await field.fill('short');
    await p.getByRole('button', { name: en.reset.submit }).click();
    await expect.poll(() => field.getAttribute('aria-invalid')).toBe('true');
    await check(a, 'reset-password-errors');
    const fresh = 'a brand new prairie passphrase';
    await field.fill(fresh);
    await p.getByRole('button', { name: en.reset.submit }).click();
    await p.getByText(en.reset.done).waitFor();
    await signIn(a, en, newcomer, fresh);
    await a.context.close();
  });

  it('works from the keyboard: skip link, menu and focus', async () => {
    const a = await actor('en');
    const p = a.page;
    await p.goto('/catalogue');
    await p.getByRole('heading', { name: en.catalogue.title, level: 1 }).waitFor();
    await p.keyboard.press('Tab');
    expect(await p.evaluate(() => document.activeElement?.textContent)).toBe(en.header.skip);
    await p.keyboard.press('Enter');
    expect(await p.evaluate(() => document.activeElement?.id)).toBe('main');
    // The search box is reachable and submits with Enter.
    await p.getByRole('searchbox', { name: en.catalogue.search_label }).focus();
    await p.keyboard.type('maple');
    await p.keyboard.press('Enter');
    await p.waitForURL(/q=maple/);
    await p.getByRole('link', { name: /Maple 7B/ }).waitFor();
    await a.context.close();
  });

  it('invites someone by e-mail, who joins without an account yet; creates an API token shown once', async () => {
    const who = `new-${Date.now().toString(36)}@example.ca`;
    const v = await actor('en');
    await signIn(v, en, 'vendor@tamarack.demo');
    await visit(v, '/profile', 'profile-vendor');
    await v.page.getByLabel(en.signup.email, { exact: true }).fill(who);
    await v.page.getByRole('button', { name: en.profile.send_invite }).click();
    await v.page.getByText(tr(en.profile.invited, { email: who })).waitFor();

    // The invitation e-mail (written to <data>/outbox-mail without SMTP) carries the link.
    let link = '';
    if (server.dataDir) {
      const dir = join(server.dataDir, 'outbox-mail');
      await expect
        .poll(() => {
          for (const f of existsSync(dir) ? readdirSync(dir) : []) {
            const body = readFileSync(join(dir, f), 'utf8');
            const m = body.includes(who) ? /\/invitations\/([A-Za-z0-9_-]+)/.exec(body) : null;
            if (m) link = `/invitations/${m[1]}`;
          }
          return link;
        })
        .not.toBe('');
      const guest = await actor('en');
      await guest.page.goto(link);
      await guest.page.getByLabel(en.signup.name, { exact: true }).fill('Nora Newcomer');
      await guest.page.getByLabel(en.signup.password, { exact: true }).fill(PASSWORD);
      await check(guest, 'invitation');
      await guest.page.getByRole('button', { name: en.invitation.accept }).click();
      await guest.page.getByText(tr(en.invitation.joined, { org: 'Northern GPU Co.', role: en.role.member })).waitFor();
      await guest.page.getByRole('button', { name: en.header.sign_out }).waitFor();
      await guest.context.close();
    }

    await visit(v, '/tokens', 'tokens-vendor');
    await v.page.getByLabel(en.tokens.name, { exact: true }).fill('ci script');
    await v.page.getByRole('button', { name: en.tokens.create }).click();
    await v.page.getByText(en.tokens.created_once).waitFor();
    expect(await v.page.getByLabel(en.tokens.secret).inputValue()).toMatch(/\S{20,}/);
    await v.page.getByRole('button', { name: tr(en.tokens.revoke_named, { name: 'ci script' }) }).waitFor();
    await v.context.close();
  });

  it('the vendor lists invitations, resends one and revokes another', async () => {
    const unique = Date.now().toString(36);
    const [keep, drop] = [`keep-${unique}@example.ca`, `drop-${unique}@example.ca`];
    const v = await actor('en');
    const p = v.page;
    await signIn(v, en, 'vendor@tamarack.demo');
    await p.goto('/profile');
    for (const who of [keep, drop]) {
      await p.getByLabel(en.signup.email, { exact: true }).fill(who);
      await p.getByRole('button', { name: en.profile.send_invite }).click();
      await p.getByText(tr(en.profile.invited, { email: who })).waitFor();
      await p.locator(`tr[data-invitation="${who}"]`).getByText(en.state.pending).waitFor();
    }
    await p.getByRole('button', { name: tr(en.profile.resend_invitation_named, { email: keep }) }).click();
    await p.getByText(tr(en.profile.invitation_resent, { email: keep })).waitFor();
    if (server.dataDir) {
      // A second e-mail with a new link (the first one stops working).
      const links = () => mailsTo(keep).map((b) => /\/invitations\/([A-Za-z0-9_-]+)/.exec(b)?.[1]);
      await expect.poll(() => new Set(links()).size).toBe(2);
    }
    await p.getByRole('button', { name: tr(en.profile.revoke_invitation_named, { email: drop }) }).click();
    await p.getByRole('group', { name: tr(en.profile.revoke_invitation_named, { email: drop }) }).getByRole('button', { name: en.profile.revoke_invitation }).click();
    await p.locator(`tr[data-invitation="${drop}"]`).getByText(en.state.revoked).waitFor();
    expect(await p.getByRole('button', { name: tr(en.profile.revoke_invitation_named, { email: drop }) }).count()).toBe(0);
    await check(v, 'profile-invitations');
    await v.context.close();
  });

  it('a vendor attaches a site agent: a token shown once, the agent connects, its node drained and returned, the agent revoked', async () => {
    const unique = Date.now().toString(36);
    const pool = 'Northern GPU Co. — Montréal';
    const v = await actor('en');
    await v.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
    await signIn(v, en, 'vendor@tamarack.demo');
    const p = v.page;
    await visit(v, '/vendor/pools', 'pools-agents-none');
    const card = p.locator('article.pool', { has: p.getByRole('heading', { name: pool }) });
    // The quality block runs before the journeys: the demo pool has no agent yet, and says what one is.
    await card.getByText(en.agents.none).waitFor();

    // A token made by mistake is revoked before anyone uses it.
    await card.getByLabel(en.agents.note).fill(`spare ${unique}`);
    await card.getByRole('button', { name: en.agents.create_token }).click();
    await card.getByText(en.agents.created_once).waitFor();
    await card.getByRole('button', { name: tr(en.agents.revoke_token_named, { note: `spare ${unique}` }) }).click();
    const tokens = card.getByRole('table', { name: tr(en.agents.tokens_of, { pool }) });
    await tokens.locator('tr', { hasText: `spare ${unique}` }).getByText(en.state.revoked).waitFor();

    // The token for the server: the token and the command are shown once; Copy puts the command on the clipboard.
    const note = `rack 4 ${unique}`;
    await card.getByLabel(en.agents.note).fill(note);
    await card.getByRole('button', { name: en.agents.create_token }).click();
    const command = await card.getByLabel(en.agents.command).inputValue();
    expect(command).toMatch(/^tamarack agent enroll --url \S+ --token tmk_enrol_\w+$/);
    expect(command).toContain(await card.getByLabel(en.agents.token, { exact: true }).inputValue());
    await card.getByRole('button', { name: en.agents.copy_command }).click();
    await card.getByText(en.common.copied).waitFor();
    expect(await p.evaluate(() => navigator.clipboard.readText())).toBe(command);
    await check(v, 'pools-agent-token');
    await tokens.locator('tr', { hasText: note }).getByText(en.state.usable).waitFor();

    // The server side needs the binary next to the stack the harness started (the agent reaches its NATS).
    if (server.dataDir) {
      const host = `e2e-host-${unique}`;
      const node = `e2e-gpu-${unique}`;
      let agent: Agent | undefined;
      let revoked = false;
      try {
        agent = await startAgent(command, { name: host, node, gpus: 'h100-80gb:2' });
        // The card follows heartbeats by itself (no reload): connected, its node with its two GPUs, the token used.
        const agents = card.getByRole('table', { name: tr(en.agents.of_pool, { pool }) });
        const row = agents.locator('tr', { hasText: host });
        await row.getByText(en.state.connected).waitFor({ timeout: 30_000 });
        await row.getByText(node).waitFor();
        await row.getByText(tr(en.agents.gpus_other, { count: 2 })).waitFor();
        // The pool's GPU count follows: the demo host's 8 declared GPUs and the agent's 2 (no sandbox runs yet).
        await card.getByText(tr(en.vendor.gpu_free_of, { gpu: 'h100-80gb', free: 10, total: 10 })).waitFor();
        await row.locator('time').waitFor();
        expect(await row.locator('time').getAttribute('title')).toMatch(/\d{4}/);
        await tokens.locator('tr', { hasText: note }).getByText(en.state.used).waitFor({ timeout: 20_000 });
        await check(v, 'pools-agent-connected');

        // Drained: no new sandboxes there; then back in service.
        const nodes = card.getByRole('table', { name: tr(en.vendor.nodes_of, { pool }) });
        const nodeRow = nodes.locator('tr', { hasText: node });
        await nodeRow.getByText(host).waitFor();
        await nodeRow.getByRole('button', { name: tr(en.agents.drain_named, { node }) }).click();
        await nodeRow.getByText(en.state.draining).waitFor();
        await nodeRow.getByRole('button', { name: tr(en.agents.undrain_named, { node }) }).click();
        await nodeRow.getByText(en.state.ready).waitFor();

        // Revoked after the confirmation: the agent is shown revoked, its node down.
        await row.getByRole('button', { name: tr(en.agents.revoke_named, { name: host }) }).click();
        await row.getByText(tr(en.agents.revoke_question, { name: host })).waitFor();
        await check(v, 'pools-agent-revoke-confirm');
        await row.getByRole('button', { name: en.agents.revoke_confirm }).click();
        await row.getByText(en.state.revoked).waitFor();
        revoked = true;
        await nodeRow.getByText(en.state.down).waitFor();
        await check(v, 'pools-agent-revoked');
      } catch (e) {
        throw new Error(`${String(e)}\nagent output:\n${agent?.output() ?? ''}`);
      } finally {
        // A failed step must not leave a ready node of the demo pool to the journeys' sandboxes.
        if (agent && !revoked) await revokeAgentsOf(pool);
        await agent?.stop();
      }
    }
    await v.context.close();
  });

  it('a gated listing: the SME asks for access, the vendor approves it, the SME is entitled', async () => {
    // Set-up through the API: the demo vendor publishes a gated dataset (staff approve it).
    const api = async (token: string | null, method: string, path: string, body?: unknown) => {
      const res = await fetch(`${server.url}/api/v1${path}`, {
        method,
        headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
      return text ? JSON.parse(text) : null;
    };
    const login = async (email: string) => (await api(null, 'POST', '/identity/login', { email, password: DEMO_PASSWORD })).access_token as string;
    const vendorToken = await login('vendor@tamarack.demo');
    const slug = `gated-${Date.now().toString(36)}`;
    const gatedTitle = `Clinical notes ${slug}`;
    const created = await api(vendorToken, 'POST', '/marketplace/listings', {
      kind: 'dataset', slug, title: gatedTitle, summary: 'De-identified notes.', card_markdown: '# Notes', tags: [],
      license: { spdx: 'CC-BY-NC-4.0' }, residency: 'CA', canadian_owned_ip: true, visibility: 'public', visible_to: [],
      gated: true, dataset: { format: 'jsonl' }, plans: [{ name: 'Research', kind: 'free', price_micro: 0 }],
    });
    const submitted = await api(vendorToken, 'POST', `/marketplace/listings/${created.id}/submit`);
    await api(await staffToken(), 'POST', `/marketplace/reviews/${submitted.pending_version.id}/decision`, { decision: 'approve', comment: '' });

    const smeA = await actor('en');
    await signIn(smeA, en, SME);
    await smeA.page.goto(`/listings/${created.id}`);
    await smeA.page.getByRole('heading', { name: gatedTitle, level: 1 }).waitFor();
    await smeA.page.getByLabel(en.listing.purpose).fill('Training a triage model.');
    await smeA.page.getByRole('button', { name: en.listing.send_request }).click();
    await smeA.page.getByText(en.listing.access_sent).waitFor();

    const v = await actor('en');
    await signIn(v, en, 'vendor@tamarack.demo');
    await visit(v, '/vendor/access-requests', 'vendor-access-inbox');
    const item = v.page.locator('li.card', { hasText: gatedTitle });
    await item.getByText('Training a triage model.').waitFor();
    await item.getByText('Maple Robotics').waitFor(); // the requester's name, not only its id
    await item.getByLabel(en.vendor.comment).fill('Approved for research.');
    await item.getByRole('button', { name: en.vendor.approve }).click();
    await item.waitFor({ state: 'detached' }); // the pending filter drops it

    await visit(smeA, '/entitlements', 'entitlements-gated');
    await smeA.page.getByRole('link', { name: gatedTitle }).waitFor();
    await smeA.context.close();
    await v.context.close();
  });

  it("staff record an offline payment for the demo partner; the partner's available credits rise", async () => {
    const partnerA = await actor('en');
    await signIn(partnerA, en, PARTNER);
    await partnerA.page.goto('/wallet');
    const available = partnerA.page.getByTestId('available').first();
    await available.waitFor();
    const credits = (b: string | null) => Number((b ?? '').replace(/[^\d.]/g, ''));
    await expect.poll(async () => credits(await available.textContent())).not.toBeNaN();
    const before = credits(await available.textContent());

    const s = await actor('en');
    await staffSignIn(s, en);
    const p = s.page;
    await visit(s, '/staff/payments', 'staff-offline-payment');
    // Nothing chosen: the form's own checks mark the fields.
    await p.getByRole('button', { name: en.payments.record }).click();
    await expect.poll(() => p.getByLabel(en.payments.credits).getAttribute('aria-invalid')).toBe('true');
    const org = p.getByLabel(en.profile.organization);
    const value = await org.locator('option', { hasText: 'Laurentian Industries' }).getAttribute('value');
    await org.selectOption(value!);
    await p.getByLabel(en.payments.credits).fill('250');
    await p.getByLabel(en.payments.reference).fill(`WIRE-${Date.now().toString(36)}`);
    await p.getByRole('button', { name: en.payments.record }).click();
    await p.getByText(tr(en.payments.recorded, { credits: 250, name: 'Laurentian Industries' })).waitFor();
    await check(s, 'staff-offline-payment-recorded');
    await visit(s, '/staff/payouts', 'staff-payouts-en');
    await p.getByRole('table', { name: en.payments.payables }).or(p.getByText(en.payments.no_payables)).waitFor();

    await partnerA.page.goto('/wallet');
    await expect.poll(async () => credits(await partnerA.page.getByTestId('available').first().textContent()), { timeout: 15_000 }).toBe(before + 250);
    await check(partnerA, 'wallet-partner-offline');
    await s.context.close();
    await partnerA.context.close();
  });

  it('fits a phone: no sideways scrolling, the menu opens, pages stay usable at 390 px', async () => {
    const a = await openPage(browser, server.url, { width: 390, height: 844 });
    const p = a.page;
    await signIn(a, en, SME, DEMO_PASSWORD, true);
    for (const [path, name] of [
      ['/catalogue', 'phone-catalogue'],
      ['/sandboxes/new', 'phone-sandbox-launch'],
      ['/wallet', 'phone-wallet'],
      ['/entitlements', 'phone-entitlements'],
    ] as const) {
      await visit(a, path, name);
      const overflow = await p.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      expect(overflow, `${path} scrolls sideways by ${overflow}px`).toBeLessThanOrEqual(0);
    }
    await p.getByRole('button', { name: en.header.menu }).click();
    await p.getByRole('link', { name: en.nav.sandboxes }).click();
    await p.getByRole('heading', { name: en.sandbox.list_title, level: 1 }).waitFor();
    await a.context.close();
  });
});

journey('en', { requestChanges: true });
journey('fr', { requestChanges: false });
