// Access to gated listings and bilingual listings, against a real `tamarack serve` (demo seed):
// - English, desktop: the demo SME asks for access to a gated dataset and sees "pending" with a lock banner and no
//   download button or rating form; the vendor approves with a note in its inbox; the SME sees "approved" with the
//   note, downloads the file (sha256 checked), copies the download snippets; the listing shows its English title.
// - French, 390 px: the SME asks for access to a second gated listing, the vendor denies it with a note, the SME
//   reads the note; "Mes demandes" lists both requests; the partner (no entitlement) gets no rating form; the
//   bilingual listing shows its French title in the catalogue and on its page.
// Screenshots land in test-results/screenshots; every checked page must be axe-clean (serious/critical) and CSP-clean.
//
// Set-up goes through the API: the demo staff enrol an authenticator (staff act only in two-step sessions), the
// demo vendor publishes two gated datasets, staff approve them.

import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import en from '../src/locales/en.json';
import fr from '../src/locales/fr.json';
import { axe, cspViolations, DEMO_PASSWORD, launchBrowser, openPage, screenshot, serious, startServer, type Server, type Watched } from './harness';
import { Authenticator } from './totp';

type Locale = typeof en;
const FR = fr as Locale;
const SME = 'sme@tamarack.demo';
const PARTNER = 'partner@tamarack.demo';
const VENDOR = 'vendor@tamarack.demo';
const STAFF = 'staff@tamarack.demo';
const PHONE = { width: 390, height: 844 };

function tr(s: string, vars: Record<string, string | number> = {}): string {
  return s.replace(/\{\{(\w+)\}\}/g, (_, k: string) => String(vars[k] ?? ''));
}

let server: Server;
let browser: Browser;
const run = Date.now().toString(36);
const fileName = 'notes.jsonl';
const fileBody = '{"note":"fever, cough"}\n{"note":"sprained ankle"}\n';
const fileSha = createHash('sha256').update(fileBody).digest('hex');
// Listing A: written in both languages, approved for the SME. Listing B: English only, denied.
const A = {
  slug: `notes-${run}`, title: `Clinical notes ${run}`, title_fr: `Notes cliniques ${run}`, summary_fr: 'Notes anonymisées de triage.', id: '',
  try_it: { image: `registry.example.ca/notes/explore@sha256:${'a'.repeat(64)}`, ports: [8888] },
};
const B = { slug: `imaging-${run}`, title: `Imaging archive ${run}`, id: '' };

async function api(token: string | null, method: string, path: string, body?: unknown, raw?: string) {
  const res = await fetch(`${server.url}/api/v1${path}`, {
    method,
    headers: { 'Content-Type': raw === undefined ? 'application/json' : 'application/octet-stream', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

async function login(email: string): Promise<string> {
  return (await api(null, 'POST', '/identity/login', { email, password: DEMO_PASSWORD })).access_token as string;
}

/** staffToken enrols an authenticator for the demo staff through the API and signs in with it (two-step). */
async function staffToken(): Promise<string> {
  const first = await api(null, 'POST', '/identity/login', { email: STAFF, password: DEMO_PASSWORD });
  if (first.mfa_required) throw new Error('demo staff already have an authenticator: this file needs its own server');
  const enrol = await api(first.access_token, 'POST', '/identity/mfa/totp', { password: DEMO_PASSWORD });
  const auth = new Authenticator(enrol.secret as string);
  await api(first.access_token, 'POST', '/identity/mfa/totp/confirm', { code: await auth.code() });
  const challenge = await api(null, 'POST', '/identity/login', { email: STAFF, password: DEMO_PASSWORD });
  return (await api(null, 'POST', '/identity/login/mfa', { mfa_token: challenge.mfa_token, code: await auth.code() })).access_token as string;
}

async function publishGated(vendor: string, staff: string, l: { slug: string; title: string; title_fr?: string; summary_fr?: string; try_it?: unknown }): Promise<string> {
  const created = await api(vendor, 'POST', '/marketplace/listings', {
    kind: 'dataset', slug: l.slug, title: l.title, summary: 'De-identified triage notes.', title_fr: l.title_fr ?? '', summary_fr: l.summary_fr ?? '',
    card_markdown: '# Notes', tags: [], license: { spdx: 'CC-BY-NC-4.0' }, residency: 'CA', canadian_owned_ip: true,
    visibility: 'public', visible_to: [], gated: true, dataset: { format: 'jsonl' }, plans: [{ name: 'Research', kind: 'free', price_micro: 0 }],
    ...(l.try_it ? { try_it: l.try_it } : {}),
  });
  await api(vendor, 'PUT', `/marketplace/listings/${created.id}/versions/1/artifacts/${fileName}`, undefined, fileBody);
  const submitted = await api(vendor, 'POST', `/marketplace/listings/${created.id}/submit`);
  await api(staff, 'POST', `/marketplace/reviews/${submitted.pending_version.id}/decision`, { decision: 'approve', comment: '' });
  return created.id as string;
}

beforeAll(async () => {
  server = await startServer();
  browser = await launchBrowser();
  const vendor = await login(VENDOR);
  const staff = await staffToken();
  A.id = await publishGated(vendor, staff, A);
  B.id = await publishGated(vendor, staff, B);
}, 180_000);
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

async function actor(lang: 'en' | 'fr', viewport?: { width: number; height: number }): Promise<Watched> {
  const a = await openPage(browser, server.url, viewport);
  if (lang === 'fr') {
    // The UI remembers the reader's choice (the header's switch stores it): start French from the first page.
    await a.context.addInitScript(() => localStorage.setItem('tamarack.lang', 'fr'));
  }
  await a.page.goto('/');
  await a.page.waitForFunction((l) => document.documentElement.lang === l, lang);
  return a;
}

async function signIn(a: Watched, L: Locale, email: string, phone = false) {
  await a.page.goto('/signin');
  await a.page.getByLabel(L.signup.email).fill(email);
  await a.page.getByLabel(L.signup.password, { exact: true }).fill(DEMO_PASSWORD);
  await a.page.getByRole('button', { name: L.signin.submit, exact: true }).click();
  if (phone) await a.page.waitForURL((u) => !u.pathname.startsWith('/signin'));
  else await a.page.getByRole('button', { name: L.header.sign_out }).waitFor();
}

/** decide approves or denies the request for a listing in the vendor's inbox, with a note. */
async function decide(L: Locale, lang: 'en' | 'fr', title: string, decision: 'approve' | 'deny', note: string, shot: string) {
  const v = await actor(lang);
  await signIn(v, L, VENDOR);
  await v.page.goto('/vendor/access-requests');
  const item = v.page.locator('li.card', { hasText: title });
  await item.getByLabel(L.vendor.comment).fill(note);
  await check(v, shot);
  await item.getByRole('button', { name: L.vendor[decision] }).click();
  await item.waitFor({ state: 'detached' });
  await v.context.close();
}

describe('access to gated listings', () => {
  it('en, desktop: request → pending and locked; approved with a note → download, snippets, rating', async () => {
    const L = en;
    const sme = await actor('en');
    await signIn(sme, L, SME);
    const p = sme.page;
    await p.goto(`/listings/${A.id}`);
    // English page: the English title, even though the listing has a French one.
    await p.getByRole('heading', { name: A.title, level: 1 }).waitFor();
    await p.getByText(L.listing.locked).waitFor();
    expect(await p.getByRole('button', { name: tr(L.access.download, { name: fileName }) }).count()).toBe(0);
    expect(await p.getByRole('button', { name: L.listing.send_rating }).count()).toBe(0);
    await p.getByText(L.listing.rating_needs_access).waitFor();
    // Try it in a sandbox: explained, not offered, until the organisation has access.
    await p.getByTestId('try-needs-access').getByText(L.listing.try_it_needs_access_gated).waitFor();
    expect(await p.getByRole('link', { name: L.listing.try_it_button }).count()).toBe(0);
    await check(sme, 'access-en-gated');

    await p.getByLabel(L.listing.purpose).fill('Training a triage model.');
    await p.getByRole('button', { name: L.listing.send_request }).click();
    await p.getByText(L.listing.access_sent).waitFor();
    const status = p.getByTestId('access-status');
    await status.getByText(L.state.pending, { exact: true }).waitFor();
    await status.getByText(L.listing.access_pending_help).waitFor();
    expect(await p.getByRole('button', { name: tr(L.access.download, { name: fileName }) }).count()).toBe(0);
    expect(await p.getByRole('button', { name: L.listing.send_request }).count()).toBe(0); // one pending request at a time
    await check(sme, 'access-en-pending');

    await decide(L, 'en', A.title, 'approve', 'Approved for research use.', 'access-en-vendor-inbox');

    await p.reload();
    await p.getByRole('heading', { name: A.title, level: 1 }).waitFor();
    await status.getByText(L.state.approved, { exact: true }).waitFor();
    await status.getByText('Approved for research use.').waitFor();
    await status.getByText(L.listing.vendor_note).waitFor();
    expect(await p.getByText(L.listing.locked).count()).toBe(0);
    // The rating form and the way to try it in a sandbox appear now that the organisation is entitled.
    await p.getByRole('button', { name: L.listing.send_rating }).waitFor();
    // The dataset has files: trying it mounts them too (read-only at /artifacts/<listing>/).
    const tryHref = `/sandboxes/new?try=${encodeURIComponent(A.id)}&mount=${encodeURIComponent(A.id)}`;
    expect(await p.getByRole('link', { name: L.listing.try_it_button }).getAttribute('href')).toBe(tryHref);

    // The download snippets name the listing's Hub repository and the CLI command; Copy puts each on the clipboard.
    await sme.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: server.url });
    const cliBox = p.getByLabel(L.listing.snippet_cli, { exact: true });
    const cliValue = await cliBox.inputValue();
    expect(cliValue).toMatch(new RegExp(`^tamarack listings download [a-z0-9-]+/${A.slug}$`));
    await p.getByRole('button', { name: L.listing.copy_cli }).click();
    await p.getByText(L.common.copied).first().waitFor();
    expect(await p.evaluate(() => navigator.clipboard.readText())).toBe(cliValue);
    const py = await p.getByLabel(L.listing.snippet_python, { exact: true }).inputValue();
    expect(py).toContain(`export HF_ENDPOINT=${server.url}`);
    expect(py).toContain(`snapshot_download("${cliValue.split(' ').pop()}", repo_type="dataset")`);
    await p.getByRole('button', { name: L.listing.copy_python }).click();
    expect(await p.evaluate(() => navigator.clipboard.readText())).toBe(py);
    await check(sme, 'access-en-approved');

    const [download] = await Promise.all([
      p.waitForEvent('download'),
      p.getByRole('button', { name: tr(L.access.download, { name: fileName }) }).click(),
    ]);
    const got = await download.createReadStream().then(async (s) => {
      const chunks: Buffer[] = [];
      for await (const c of s) chunks.push(c as Buffer);
      return Buffer.concat(chunks);
    });
    expect(createHash('sha256').update(got).digest('hex')).toBe(fileSha);

    // A copyable curl command per file, with the API token as a placeholder.
    const curl = await p.getByLabel(tr(L.listing.snippet_curl, { name: fileName }), { exact: true }).inputValue();
    expect(curl).toMatch(new RegExp(`^curl -fL -H "Authorization: Bearer \\$TAMARACK_TOKEN" -o ${fileName.replace('.', '\\.')} ${server.url}/api/v1/marketplace/artifacts/[^/]+/download$`));
    await p.getByRole('button', { name: tr(L.listing.copy_curl, { name: fileName }) }).click();
    expect(await p.evaluate(() => navigator.clipboard.readText())).toBe(curl);

    // Try in a sandbox: the launch form and its summary say where the files will be, read-only.
    await p.goto(tryHref);
    const where = `/artifacts/${A.id}/`;
    await p.getByText(tr(L.sandbox.mount_intro_one, { path: where }), { exact: true }).waitFor();
    await p.getByTestId('sum-artifacts').waitFor();
    expect(await p.getByTestId('sum-artifacts').textContent()).toBe(tr(L.sandbox.mounted_read_only_one, { path: where }));
    await check(sme, 'access-en-try-files');

    // The catalogue shows the English title on English pages.
    await p.goto(`/catalogue?q=${encodeURIComponent(run)}`);
    await p.getByRole('link', { name: A.title }).waitFor();
    expect(await p.getByRole('link', { name: A.title_fr }).count()).toBe(0);
    await check(sme, 'access-en-catalogue');
    await sme.context.close();
  }, 180_000);

  it('fr, 390 px: a denied request shows the vendor’s note; Mes demandes lists both; French titles', async () => {
    const L = FR;
    const sme = await actor('fr', PHONE);
    await signIn(sme, L, SME, true);
    const p = sme.page;
    await p.goto(`/listings/${B.id}`);
    // English only: a French reader sees the English title (fallback), marked as English.
    const h1 = p.getByRole('heading', { name: B.title, level: 1 });
    await h1.waitFor();
    expect(await h1.getAttribute('lang')).toBe('en');
    await p.getByText(L.listing.locked).waitFor();
    await p.getByLabel(L.listing.purpose).fill('Former un modèle de triage.');
    await p.getByRole('button', { name: L.listing.send_request }).click();
    const status = p.getByTestId('access-status');
    await status.getByText(L.state.pending, { exact: true }).waitFor();
    expect(await p.getByRole('button', { name: tr(L.access.download, { name: fileName }) }).count()).toBe(0);
    await check(sme, 'access-fr-phone-pending');

    await decide(L, 'fr', B.title, 'deny', 'Décrivez votre comité d’éthique.', 'access-fr-vendor-inbox');

    await p.reload();
    await status.getByText(L.state.denied, { exact: true }).waitFor();
    await status.getByText('Décrivez votre comité d’éthique.').waitFor();
    await status.getByText(L.listing.access_denied_help).waitFor();
    expect(await p.getByRole('button', { name: tr(L.access.download, { name: fileName }) }).count()).toBe(0);
    // Denied: the SME may ask again.
    await p.getByRole('heading', { name: L.listing.ask_again }).waitFor();
    await check(sme, 'access-fr-phone-denied');

    // My requests: through the folded menu, as on a phone.
    await p.getByRole('button', { name: L.header.menu }).click();
    await p.getByRole('link', { name: L.nav.my_requests }).click();
    await p.getByRole('heading', { name: L.access.requests_title, level: 1 }).waitFor();
    const items = p.getByTestId('my-request');
    const approved = items.filter({ hasText: A.title_fr });
    await approved.getByText(L.state.approved, { exact: true }).waitFor();
    await approved.getByText('Approved for research use.').waitFor();
    const denied = items.filter({ hasText: B.title });
    await denied.getByText(L.state.denied, { exact: true }).waitFor();
    await denied.getByText('Décrivez votre comité d’éthique.').waitFor();
    expect(await p.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true);
    await check(sme, 'access-fr-phone-my-requests');

    // The bilingual listing: its French title and summary on French pages, in the catalogue and on its page.
    await p.goto(`/catalogue?q=${encodeURIComponent(run)}`);
    await p.getByRole('link', { name: A.title_fr }).waitFor();
    expect(await p.getByRole('link', { name: A.title, exact: true }).count()).toBe(0);
    await check(sme, 'access-fr-phone-catalogue');
    await p.goto(`/listings/${A.id}`);
    await p.getByRole('heading', { name: A.title_fr, level: 1 }).waitFor();
    await p.getByText(A.summary_fr).waitFor();
    await p.getByTestId('access-status').getByText(L.state.approved, { exact: true }).waitFor();
    await check(sme, 'access-fr-phone-listing');
    // Downloads (Téléchargements) name it in French too.
    await p.goto('/entitlements');
    await p.getByRole('link', { name: A.title_fr }).waitFor();
    await check(sme, 'access-fr-phone-downloads');
    await sme.context.close();
  }, 180_000);

  it('fr, desktop: a buyer without an entitlement gets no rating form and no download', async () => {
    const L = FR;
    const partner = await actor('fr');
    await signIn(partner, L, PARTNER);
    const p = partner.page;
    await p.goto(`/listings/${A.id}`);
    await p.getByRole('heading', { name: A.title_fr, level: 1 }).waitFor();
    await p.getByText(L.listing.locked).waitFor();
    await p.getByText(L.listing.rating_needs_access).waitFor();
    expect(await p.getByRole('button', { name: L.listing.send_rating }).count()).toBe(0);
    expect(await p.getByRole('button', { name: tr(L.access.download, { name: fileName }) }).count()).toBe(0);
    expect(await p.getByLabel(L.listing.snippet_cli, { exact: true }).count()).toBe(0);
    await check(partner, 'access-fr-partner-locked');
    await partner.context.close();
  }, 120_000);
});
