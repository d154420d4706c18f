// Journeys against the real server (TAMARACK_E2E_URL, or the command in TAMARACK_E2E_SERVER_CMD, by default
// `go run ./cmd/tamarack serve`). Each main page gets a screenshot in test-results/screenshots and an axe check.
// Staff pages need a staff account: set TAMARACK_E2E_STAFF_EMAIL and TAMARACK_E2E_STAFF_PASSWORD (e.g. from
// `tamarack seed`); without them those journeys are reported as skipped.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { axe, cspViolations, launchBrowser, openPage, screenshot, serious, startServer, type Server } from './harness';

const unique = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e4)}`;
const PASSWORD = 'correct horse battery staple';

async function signUp(page: Page, kind: 'SME' | 'Vendor' | 'Industry partner', who: string) {
  await page.goto('/signup');
  await page.getByLabel(new RegExp(`^${kind}`)).check();
  await page.getByLabel('Organisation name').fill(`${who} ${unique}`);
  await page.getByLabel('Your name').fill(who);
  await page.getByLabel('Email').fill(`${who.toLowerCase()}-${unique}@example.ca`);
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD);
  await page.getByRole('button', { name: 'Create the account' }).click();
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
}

/** visit opens a page, waits for its heading and for loading to end, then screenshots and checks it. */
async function visit(page: Page, path: string, name: string, problems: string[]) {
  await page.goto(path);
  await page.getByRole('heading', { level: 1 }).first().waitFor();
  await page.waitForFunction(() => !document.querySelector('.loading'), undefined, { timeout: 15_000 }).catch(() => undefined);
  await screenshot(page, name);
  expect(serious(await axe(page, name)), `${path}: serious accessibility violations`).toEqual([]);
  expect(cspViolations(problems), `${path}: CSP violations`).toEqual([]);
}

describe('journeys against the server', () => {
  let server: Server;
  let browser: Browser;

  beforeAll(async () => {
    server = await startServer();
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('visitor: home and catalogue', async () => {
    const { page, problems, context } = await openPage(browser, server.url);
    await visit(page, '/', 'home', problems);
    await visit(page, '/catalogue', 'catalogue', problems);
    await visit(page, '/signup', 'signup', problems);
    await visit(page, '/signin', 'signin', problems);
    await context.close();
  });

  it('SME: signs up and sees its wallet, sandboxes, launch form, orders and downloads', async () => {
    const { page, problems, context } = await openPage(browser, server.url);
    await signUp(page, 'SME', 'Sme');
    for (const [path, name] of [
      ['/wallet', 'wallet'],
      ['/sandboxes', 'sandboxes'],
      ['/sandboxes/new', 'sandbox-launch'],
      ['/orders', 'orders'],
      ['/entitlements', 'entitlements'],
      ['/profile', 'profile'],
      ['/tokens', 'tokens'],
    ] as const) {
      await visit(page, path, name, problems);
    }
    await context.close();
  });

  it('vendor: signs up, drafts a listing with a live preview', async () => {
    const { page, problems, context } = await openPage(browser, server.url);
    await signUp(page, 'Vendor', 'Vendor');
    await visit(page, '/vendor/listings', 'vendor-listings', problems);
    await visit(page, '/vendor/listings/new', 'vendor-editor', problems);
    await page.getByLabel('Title').fill(`Test model ${unique}`);
    await page.getByLabel('Summary').fill('A small model for the journey test.');
    await page.getByLabel('Card (Markdown)').fill('# Intended use\n\nTesting.');
    expect(await page.getByRole('region', { name: 'Preview' }).getByRole('heading', { name: 'Intended use' }).isVisible()).toBe(true);
    await page.getByRole('button', { name: 'Create the draft' }).click();
    await page.waitForURL(/\/vendor\/listings\/[^/]+\/edit$/);
    await visit(page, page.url().replace(server.url, ''), 'vendor-editor-draft', problems);
    await visit(page, '/vendor/access-requests', 'vendor-access-requests', problems);
    await visit(page, '/vendor/pools', 'vendor-pools', problems);
    await visit(page, '/vendor/earnings', 'vendor-earnings', problems);
    await context.close();
  });

  const staffEmail = process.env.TAMARACK_E2E_STAFF_EMAIL;
  const staffPassword = process.env.TAMARACK_E2E_STAFF_PASSWORD;
  it.skipIf(!staffEmail || !staffPassword)('staff: review queue, organisations, grants, spend and audit', async () => {
    const { page, problems, context } = await openPage(browser, server.url);
    await page.goto('/signin');
    await page.getByLabel('Email').fill(staffEmail!);
    await page.getByLabel('Password', { exact: true }).fill(staffPassword!);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('button', { name: 'Sign out' }).waitFor();
    for (const [path, name] of [
      ['/staff/reviews', 'staff-reviews'],
      ['/staff/organizations', 'staff-organizations'],
      ['/staff/grants', 'staff-grants'],
      ['/staff/spend', 'staff-spend'],
      ['/staff/audit', 'staff-audit'],
    ] as const) {
      await visit(page, path, name, problems);
    }
    await context.close();
  });
});
