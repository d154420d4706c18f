// The browser-test harness: find or start a Tamarack server, drive Chromium with playwright-core, take
// screenshots, run axe, and stop what it started. It builds nothing: `npm run build` (and the Go binary's embed)
// come first.
//
// Environment:
//   TAMARACK_E2E_URL         use this running server instead of starting one
//   TAMARACK_E2E_SERVER_CMD  command to start one (run with sh from the repo root); {port}, {addr} and {data}
//                            are replaced. Default: go run ./cmd/tamarack serve --data {data} --addr {addr}
//   TAMARACK_E2E_CHROMIUM    browser executable (default /usr/bin/chromium)

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import AxeBuilder from '@axe-core/playwright';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const FRONTEND_DIR = resolve(here, '..');
export const REPO_ROOT = resolve(FRONTEND_DIR, '..');
export const RESULTS_DIR = join(FRONTEND_DIR, 'test-results');
export const SCREENSHOT_DIR = join(RESULTS_DIR, 'screenshots');
const AXE_DIR = join(RESULTS_DIR, 'axe');

export const DEFAULT_SERVER_CMD = 'go run ./cmd/tamarack serve --data {data} --addr {addr}';

export interface Server {
  url: string;
  stop: () => Promise<void>;
  output: () => string;
}

export function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.unref();
    s.on('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => ok(port));
    });
  });
}

/** waitReady polls url until it answers 200, the process dies, or the deadline passes. */
export async function waitReady(url: string, timeoutMs: number, died: () => string | null): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    const why = died();
    if (why) throw new Error(`server exited before it was ready: ${why}`);
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      if (res.status === 200) return;
      last = `HTTP ${res.status}: ${(await res.text()).slice(0, 200)}`;
    } catch (e) {
      last = String(e);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${url} not ready after ${timeoutMs} ms (last: ${last})`);
}

/** startServer returns TAMARACK_E2E_URL, or starts the server command and waits for /readyz. */
export async function startServer(): Promise<Server> {
  const given = process.env.TAMARACK_E2E_URL;
  if (given) {
    const url = given.replace(/\/$/, '');
    await waitReady(`${url}/readyz`, 30_000, () => null);
    return { url, stop: async () => undefined, output: () => '' };
  }
  const port = await freePort();
  const addr = `127.0.0.1:${port}`;
  const data = mkdtempSync(join(tmpdir(), 'tamarack-e2e-'));
  const cmd = (process.env.TAMARACK_E2E_SERVER_CMD ?? DEFAULT_SERVER_CMD)
    .replaceAll('{port}', String(port))
    .replaceAll('{addr}', addr)
    .replaceAll('{data}', data);
  let out = '';
  // detached: the server gets its own process group, so that stop() also ends what `go run` started.
  const child: ChildProcess = spawn('sh', ['-c', cmd], { cwd: REPO_ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout?.on('data', (b: Buffer) => (out = (out + b.toString()).slice(-20_000)));
  child.stderr?.on('data', (b: Buffer) => (out = (out + b.toString()).slice(-20_000)));
  let exited: string | null = null;
  child.on('exit', (code, sig) => (exited = `exit ${code ?? sig}; command: ${cmd}\n${out}`));
  const url = `http://${addr}`;
  const stop = async () => {
    if (child.pid && exited === null) {
      try {
        process.kill(-child.pid, 'SIGTERM');
      } catch {
        // already gone
      }
      const deadline = Date.now() + 10_000;
      while (exited === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      if (exited === null) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    rmSync(data, { recursive: true, force: true });
  };
  try {
    await waitReady(`${url}/readyz`, Number(process.env.TAMARACK_E2E_READY_MS ?? 180_000), () => exited);
  } catch (e) {
    await stop();
    throw e;
  }
  return { url, stop, output: () => out };
}

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-quic',
  '--no-first-run',
  '--disable-component-update',
  '--disable-sync',
];

export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env.TAMARACK_E2E_CHROMIUM ?? '/usr/bin/chromium',
    args: CHROMIUM_ARGS,
    headless: true,
  });
}

export interface Watched {
  context: BrowserContext;
  page: Page;
  /** Console errors, page errors and CSP violations seen so far. */
  problems: string[];
}

/** openPage opens a fresh context (own storage) and records console errors, including CSP violations. */
export async function openPage(browser: Browser, baseURL: string, viewport = { width: 1280, height: 900 }): Promise<Watched> {
  const context = await browser.newContext({ baseURL, viewport, locale: 'en-CA' });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  return { context, page, problems };
}

/** cspViolations filters the recorded problems down to Content-Security-Policy refusals. */
export function cspViolations(problems: string[]): string[] {
  return problems.filter((p) => /Content Security Policy/i.test(p));
}

export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const path = join(SCREENSHOT_DIR, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}

export interface AxeSummary {
  id: string;
  impact: string | null | undefined;
  help: string;
  nodes: string[];
}

/** axe runs axe-core (WCAG 2.1 A and AA) on the page, saves the full result and returns the violations. */
export async function axe(page: Page, name: string): Promise<AxeSummary[]> {
  const result = await new AxeBuilder({ page }).withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']).analyze();
  mkdirSync(AXE_DIR, { recursive: true });
  writeFileSync(join(AXE_DIR, `${name}.json`), JSON.stringify(result.violations, null, 2));
  return result.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(' ')) }));
}

/** serious keeps the violations that fail a journey (serious and critical). */
export function serious(v: AxeSummary[]): AxeSummary[] {
  return v.filter((x) => x.impact === 'serious' || x.impact === 'critical');
}
