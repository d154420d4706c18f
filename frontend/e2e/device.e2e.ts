// Device login (RFC 8628) in Chromium against the real server: a client (this test, over HTTP) asks for a code, the
// demo SME opens verification_uri_complete signed out, signs in, comes back to /device?code=…, approves, and the
// client's polls get tokens that work on GET /identity/me; a typed code is denied and the client hears
// access_denied; an unknown code shows its message, in French.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import en from '../src/locales/en.json';
import fr from '../src/locales/fr.json';
import { axe, cspViolations, DEMO_PASSWORD, launchBrowser, openPage, screenshot, serious, startServer, type Server, type Watched } from './harness';

const SME = 'sme@tamarack.demo';

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

function tr(s: string, vars: Record<string, string> = {}): string {
  return s.replace(/\{\{(\w+)\}\}/g, (_, k: string) => vars[k] ?? '');
}

async function check(a: Watched, name: string) {
  await a.page.waitForFunction(() => !document.querySelector('.loading'), undefined, { timeout: 15_000 }).catch(() => undefined);
  await screenshot(a.page, name);
  expect(serious(await axe(a.page, name)), `${name}: serious accessibility violations`).toEqual([]);
  expect(cspViolations(a.problems), `${name}: CSP violations`).toEqual([]);
}

interface Authorization {
  device_code: string;
  user_code: string;
  verification_uri: string;
  verification_uri_complete: string;
  expires_in: number;
  interval: number;
}

async function post(path: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${server.url}/api/v1/identity${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'User-Agent': 'tamarack-cli/e2e (linux)' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function requestCode(name: string): Promise<Authorization> {
  const r = await post('/device/code', { client_name: name });
  expect(r.status).toBe(200);
  const a = r.body as unknown as Authorization;
  expect(a.user_code).toMatch(/^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$/);
  expect(a.verification_uri).toBe(`${server.url}/device`);
  expect(a.verification_uri_complete).toBe(`${server.url}/device?code=${a.user_code}`);
  expect(a.expires_in).toBe(600);
  expect(a.interval).toBe(5);
  return a;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** poll waits the interval before each poll, as a client must, until the answer is not authorization_pending. */
async function poll(a: Authorization): Promise<{ status: number; body: Record<string, unknown> }> {
  let interval = a.interval;
  for (let i = 0; i < 12; i++) {
    await sleep(interval * 1000);
    const r = await post('/device/token', { device_code: a.device_code });
    if (r.body.code === 'slow_down') interval += 5;
    else if (r.body.code !== 'authorization_pending') return r;
  }
  throw new Error('still pending after 12 polls');
}

async function signIn(a: Watched) {
  await a.page.getByLabel(en.signup.email).fill(SME);
  await a.page.getByLabel(en.signup.password, { exact: true }).fill(DEMO_PASSWORD);
  await a.page.getByRole('button', { name: en.signin.submit, exact: true }).click();
}

describe('device login', () => {
  it('signs a client in after the user approves on /device', async () => {
    const code = await requestCode('tamarack CLI on e2e');
    const a = await openPage(browser, server.url);
    try {
      // Signed out: through sign-in and back to the page with the code.
      await a.page.goto(code.verification_uri_complete);
      await a.page.waitForURL(/\/signin\?next=/);
      await signIn(a);
      await a.page.waitForURL((u) => u.pathname === '/device' && u.searchParams.get('code') === code.user_code);
      const req = a.page.getByTestId('device-request');
      await req.getByText('tamarack CLI on e2e').waitFor();
      await expect(req.textContent()).resolves.toContain(code.user_code);
      await expect(req.textContent()).resolves.toContain('Tamarack CLI on Linux');
      await check(a, 'device-confirm');

      // Not yet approved: the client hears authorization_pending.
      const pending = await post('/device/token', { device_code: code.device_code });
      expect([pending.status, pending.body.code]).toEqual([400, 'authorization_pending']);

      await a.page.getByRole('button', { name: en.device.approve }).click();
      await a.page.getByText(en.device.return_to_terminal).waitFor();
      await a.page.getByText(en.device.approved).waitFor();
      await check(a, 'device-approved');

      const tok = await poll(code);
      expect(tok.status, JSON.stringify(tok.body)).toBe(200);
      expect(tok.body.token_type).toBe('Bearer');
      const me = await fetch(`${server.url}/api/v1/identity/me`, { headers: { Authorization: `Bearer ${String(tok.body.access_token)}` } });
      expect(me.status).toBe(200);
      expect(((await me.json()) as { user: { email: string } }).user.email).toBe(SME);

      // Once only.
      await sleep(code.interval * 1000);
      const again = await post('/device/token', { device_code: code.device_code });
      expect([again.status, again.body.code]).toEqual([400, 'invalid_grant']);

      // The new session is listed under the client's name.
      await a.page.goto('/account/security');
      await a.page.getByTestId('sessions').getByText('tamarack CLI on e2e').waitFor();
    } finally {
      await a.context.close();
    }
  });

  it('tells the client access_denied when the user denies a typed code', async () => {
    const code = await requestCode('tamarack CLI to deny');
    const a = await openPage(browser, server.url);
    try {
      await a.page.goto('/device');
      await a.page.waitForURL(/\/signin\?next=/);
      await signIn(a);
      await a.page.waitForURL((u) => u.pathname === '/device');
      await a.page.getByLabel(en.device.code_label).fill(code.user_code.replace('-', '').toLowerCase());
      await check(a, 'device-enter-code');
      await a.page.getByRole('button', { name: en.device.continue }).click();
      await a.page.getByTestId('device-request').getByText('tamarack CLI to deny').waitFor();
      await a.page.getByRole('button', { name: en.device.deny }).click();
      await a.page.getByText(en.device.denied).waitFor();
      await a.page.getByText(en.device.return_to_terminal).waitFor();
      await check(a, 'device-denied');
      const r = await poll(code);
      expect([r.status, r.body.code]).toEqual([403, 'access_denied']);
    } finally {
      await a.context.close();
    }
  });

  it('says when a code is unknown, in French', async () => {
    const a = await openPage(browser, server.url);
    try {
      await a.page.goto('/signin');
      await signIn(a);
      await a.page.getByRole('button', { name: en.header.sign_out }).waitFor();
      await a.page.getByRole('button', { name: tr(en.header.switch_language_to, { language: 'Français' }) }).click();
      await a.page.waitForFunction(() => document.documentElement.lang === 'fr');
      await a.page.goto('/device?code=BBBB-BBBB');
      const alert = a.page.getByRole('alert');
      await alert.getByText(fr.device.error.device_code_not_found_title).waitFor();
      await expect(alert.textContent()).resolves.toContain(fr.device.error.device_code_not_found_body);
      // The field stays, to type the code again.
      await a.page.getByLabel(fr.device.code_label).waitFor();
      await check(a, 'device-unknown-fr');
    } finally {
      await a.context.close();
    }
  });
});
