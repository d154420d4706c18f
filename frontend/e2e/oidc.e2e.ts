// Sign-in with an OpenID Connect provider, in Chromium, against a real provider: zitadel/oidc's example OP (the
// one services/identity/oidc_test.go uses, built once with `go install` into the same cache folder) and
// `tamarack serve --oidc-providers` pointing at it. The demo SME signs in through the provider (its verified
// e-mail links the demo account) from a protected page and lands back on it, signed in; a user of a domain the
// provider's settings do not admit sees the refusal on the callback page, in French.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import en from '../src/locales/en.json';
import fr from '../src/locales/fr.json';
import { axe, cspViolations, freePort, launchBrowser, openPage, screenshot, serious, startProcess, startServer, type Server, type Watched } from './harness';

const OP_MODULE = 'github.com/zitadel/oidc/v3/example/server';
const OP_VERSION = 'v3.52.0';
const OP_PASSWORD = 'verysecure';

/** opBinary returns the example OP, building it as the Go tests do when their build is not there yet. */
function opBinary(): string {
  const cache = process.env.XDG_CACHE_HOME || join(homedir(), '.cache');
  const dir = join(cache, 'tamarack', `zitadel-oidc-example-server-${OP_VERSION}`);
  const bin = join(dir, 'server');
  if (existsSync(bin)) return bin;
  mkdirSync(dir, { recursive: true });
  const tmp = mkdtempSync(join(dir, 'build-'));
  try {
    execFileSync('go', ['install', `${OP_MODULE}@${OP_VERSION}`], {
      cwd: tmp, // outside this module: go install pkg@version resolves the example's own go.mod
      env: { ...process.env, GOBIN: tmp, GOWORK: 'off', CGO_ENABLED: '0' },
      stdio: 'pipe',
      timeout: 300_000,
    });
    renameSync(join(tmp, 'server'), bin); // atomic: a concurrent Go test sees the whole binary or none
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  return bin;
}

function tr(s: string, vars: Record<string, string> = {}): string {
  return s.replace(/\{\{(\w+)\}\}/g, (_, k: string) => vars[k] ?? '');
}

const PROVIDER = 'Demo SSO';
let server: Server;
let browser: Browser;
let op: { stop: () => Promise<void>; output: () => string } | undefined;
let work = '';

beforeAll(async () => {
  // Both ports first: the OP must know our callback, and serve the OP's issuer.
  const port = await freePort();
  const opPort = await freePort();
  const issuer = `http://localhost:${opPort}/`;
  const callback = `http://127.0.0.1:${port}/api/v1/identity/oidc/demo-sso/callback`;
  work = mkdtempSync(join(tmpdir(), 'tamarack-e2e-oidc-'));
  const user = (id: string, username: string, email: string) => ({
    ID: id, Username: username, Password: OP_PASSWORD, FirstName: username, LastName: 'Test', Email: email,
    EmailVerified: true, PreferredLanguage: 'en',
  });
  const users = { 'u-sme': user('u-sme', 'sme', 'sme@tamarack.demo'), 'u-eve': user('u-eve', 'eve', 'eve@elsewhere.test') };
  writeFileSync(join(work, 'users.json'), JSON.stringify(users));
  op = await startProcess(opBinary(), [], { PORT: String(opPort), REDIRECT_URI: callback, USERS_FILE: join(work, 'users.json') },
    `${issuer}.well-known/openid-configuration`, 'example OP');
  // tamarack.demo is admitted; its organisation is only joined by new users, and this test's user already has an
  // account (the demo SME), which the provider's verified e-mail links.
  writeFileSync(join(work, 'providers.json'), JSON.stringify([{
    id: 'demo-sso', name: PROVIDER, issuer, client_id: 'web', client_secret: 'secret', redirect_url: callback,
    domains: { 'tamarack.demo': 'demo-organisation-not-joined' },
  }]));
  server = await startServer({ port, args: ['--oidc-providers', join(work, 'providers.json')] });
  browser = await launchBrowser();
});
afterAll(async () => {
  await browser?.close();
  await server?.stop();
  await op?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

async function check(a: Watched, name: string) {
  await a.page.waitForFunction(() => !document.querySelector('.loading'), undefined, { timeout: 15_000 }).catch(() => undefined);
  await screenshot(a.page, name);
  expect(serious(await axe(a.page, name)), `${name}: serious accessibility violations`).toEqual([]);
  expect(cspViolations(a.problems), `${name}: CSP violations`).toEqual([]);
}

/** atProvider fills the example OP's login form. */
async function atProvider(a: Watched, username: string) {
  await a.page.waitForURL(/localhost:\d+\/login\/username/);
  await a.page.getByLabel('Username:').fill(username);
  await a.page.getByLabel('Password:').fill(OP_PASSWORD);
  await a.page.getByRole('button', { name: 'Login' }).click();
}

describe('sign-in with an OpenID Connect provider', () => {
  it('signs the demo SME in through the provider and lands on the page it came from', async () => {
    const a = await openPage(browser, server.url);
    try {
      await a.page.goto('/wallet');
      await a.page.waitForURL(/\/signin\?next=/);
      const button = a.page.getByRole('link', { name: tr(en.oidc.sign_in_with, { name: PROVIDER }) });
      await button.waitFor();
      await check(a, 'oidc-signin-providers');
      await button.click();
      await atProvider(a, 'sme');
      await a.page.waitForURL((u) => u.pathname === '/wallet', { timeout: 20_000 });
      await a.page.getByRole('button', { name: en.header.sign_out }).waitFor();
      expect(a.page.url()).not.toContain('code=');
      // The tokens are kept as password sign-in keeps them: a reload stays signed in.
      expect(await a.page.evaluate(() => localStorage.getItem('tamarack.refresh_token'))).toBeTruthy();
      await a.page.reload();
      await a.page.getByRole('button', { name: en.header.sign_out }).waitFor();
      await check(a, 'oidc-signed-in');
    } finally {
      await a.context.close();
    }
  });

  it('shows a refusal (domain not admitted) on the callback page, in French', async () => {
    const a = await openPage(browser, server.url);
    try {
      await a.page.goto('/signin');
      await a.page.getByRole('button', { name: tr(en.header.switch_language_to, { language: 'Français' }) }).click();
      await a.page.waitForFunction(() => document.documentElement.lang === 'fr');
      await a.page.getByRole('link', { name: tr(fr.oidc.sign_in_with, { name: PROVIDER }) }).click();
      await atProvider(a, 'eve');
      await a.page.waitForURL((u) => u.pathname === '/signin/callback');
      const alert = a.page.getByRole('alert');
      await alert.getByText(fr.oidc_error.oidc_domain_not_allowed).waitFor();
      await expect(alert.textContent()).resolves.toContain(fr.oidc.failed);
      await a.page.getByRole('link', { name: fr.oidc.back }).waitFor();
      expect(await a.page.evaluate(() => localStorage.getItem('tamarack.refresh_token'))).toBeNull();
      await check(a, 'oidc-refused-fr');
    } finally {
      await a.context.close();
    }
  });
});
