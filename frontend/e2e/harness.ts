// The browser-test harness: start a real Tamarack stack (demo seed, stripe-mock, `tamarack serve` on a temporary
// data directory), drive Chromium with playwright-core, take screenshots, run axe, and stop everything it started.
// It builds nothing: `make e2e` builds the UI and the binary once, before the tests.
//
// Environment:
//   TAMARACK_E2E_URL             use this running server instead of starting one (then TAMARACK_E2E_WEBHOOK_SECRET
//                                must be its Stripe webhook secret for the credit purchase step)
//   TAMARACK_E2E_BIN             the tamarack binary (default: <repo>/bin/tamarack, as `make build` leaves it)
//   TAMARACK_E2E_STRIPE_MOCK     the stripe-mock binary (default: stripe-mock on PATH, else ~/go/bin/stripe-mock)
//   TAMARACK_E2E_SERVER_CMD      replace the whole stack by this command (run with sh from the repository root;
//                                {port}, {addr}, {data} are filled in): no seed, no stripe-mock
//   TAMARACK_E2E_CHROMIUM        browser executable (default /usr/bin/chromium)

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import AxeBuilder from '@axe-core/playwright';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
export const FRONTEND_DIR = resolve(here, '..');
export const REPO_ROOT = resolve(FRONTEND_DIR, '..');
export const RESULTS_DIR = join(FRONTEND_DIR, 'test-results');
export const SCREENSHOT_DIR = join(RESULTS_DIR, 'screenshots');
const AXE_DIR = join(RESULTS_DIR, 'axe');

/** The Stripe webhook secret of the servers the harness starts. */
export const WEBHOOK_SECRET = 'whsec_test_e2e';
export const DEMO_PASSWORD = 'tamarack-demo-2026';

export interface Server {
  url: string;
  /** The webhook signing secret, when the server takes card payments (stripe-mock). */
  webhookSecret?: string;
  /** The server's data directory, when the harness made it (e-mails land in <data>/outbox-mail). */
  dataDir?: string;
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
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${url} not ready after ${timeoutMs} ms (last: ${last})`);
}

/** waitPort waits until a TCP connection to 127.0.0.1:port succeeds. */
async function waitPort(port: number, timeoutMs: number, died: () => string | null): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const why = died();
    if (why) throw new Error(`process exited before it listened: ${why}`);
    const ok = await new Promise<boolean>((r) => {
      const c = connect(port, '127.0.0.1');
      c.once('connect', () => {
        c.destroy();
        r(true);
      });
      c.once('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`port ${port} not listening after ${timeoutMs} ms`);
}

// Every process group the harness started, so that even an aborted run (an exception, Ctrl-C) leaves none behind.
const groups = new Set<number>();
function killAll() {
  for (const pid of groups) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  groups.clear();
}
process.once('exit', killAll);
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    killAll();
    process.exit(130);
  });
}

interface Proc {
  exited: () => string | null;
  output: () => string;
  stop: () => Promise<void>;
}

/**
 * startProcess runs a helper (in its own process group, stopped with the rest on exit) with extra environment,
 * and waits until url answers 200.
 */
export async function startProcess(file: string, args: string[], env: Record<string, string>, url: string, label: string): Promise<{ stop: () => Promise<void>; output: () => string }> {
  const p = spawnGroup(file, args, label, env);
  try {
    await waitReady(url, 30_000, p.exited);
  } catch (e) {
    await p.stop();
    throw e;
  }
  return { stop: p.stop, output: p.output };
}

/** spawnGroup starts a command in its own process group (so stop() also ends its children) and keeps its output. */
function spawnGroup(file: string, args: string[], label: string, env?: Record<string, string>): Proc {
  let out = '';
  const child: ChildProcess = spawn(file, args, {
    cwd: REPO_ROOT,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: env ? { ...process.env, ...env } : undefined,
  });
  child.stdout?.on('data', (b: Buffer) => (out = (out + b.toString()).slice(-40_000)));
  child.stderr?.on('data', (b: Buffer) => (out = (out + b.toString()).slice(-40_000)));
  let exited: string | null = null;
  if (child.pid) groups.add(child.pid);
  child.on('error', (e) => (exited = `${label}: ${e.message}`));
  child.on('exit', (code, sig) => {
    exited = `${label}: exit ${code ?? sig}\n${out}`;
    if (child.pid) groups.delete(child.pid);
  });
  const stop = async () => {
    if (!child.pid || exited !== null) return;
    try {
      process.kill(-child.pid, 'SIGTERM');
    } catch {
      // already gone
    }
    const deadline = Date.now() + 10_000;
    while (exited === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    if (exited === null) {
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    groups.delete(child.pid);
  };
  return { exited: () => exited, output: () => out, stop };
}

function which(name: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  return null;
}

export function stripeMockPath(): string | null {
  const given = process.env.TAMARACK_E2E_STRIPE_MOCK;
  if (given) return given;
  return which('stripe-mock') ?? (existsSync(join(homedir(), 'go/bin/stripe-mock')) ? join(homedir(), 'go/bin/stripe-mock') : null);
}

/** tamarackBin is the binary under test: TAMARACK_E2E_BIN, else bin/tamarack as `make build` leaves it. */
export function tamarackBin(): string {
  const bin = resolve(REPO_ROOT, process.env.TAMARACK_E2E_BIN ?? 'bin/tamarack');
  if (!existsSync(bin)) throw new Error(`${bin} not found: run \`make e2e\` (or \`make build\`), or set TAMARACK_E2E_BIN`);
  return bin;
}

export interface Agent {
  stop: () => Promise<void>;
  output: () => string;
}

/**
 * startAgent attaches a site agent the way a vendor does: it runs the enrol command the UI showed
 * (`tamarack agent enroll --url … --token …`, with the binary under test and a temporary data directory), then
 * `tamarack agent run` on the simulator backend with declared GPUs (nothing runs on this host). stop() ends it and
 * removes its data directory; the harness also ends it if the run is aborted.
 */
export async function startAgent(command: string, opts: { name: string; node: string; gpus: string }): Promise<Agent> {
  const words = command.trim().split(/\s+/);
  if (words.slice(0, 3).join(' ') !== 'tamarack agent enroll') throw new Error(`not an enrol command: ${command}`);
  const bin = tamarackBin();
  const data = mkdtempSync(join(tmpdir(), 'tamarack-e2e-agent-'));
  try {
    await promisify(execFile)(bin, [...words.slice(1), '--data', data, '--name', opts.name], { cwd: REPO_ROOT, timeout: 30_000 });
  } catch (e) {
    rmSync(data, { recursive: true, force: true });
    throw e;
  }
  const p = spawnGroup(bin, ['agent', 'run', '--data', data, '--backend', 'simulator', '--node', opts.node, '--gpus', opts.gpus, '--log-level', 'warn'], 'tamarack agent');
  return {
    output: p.output,
    stop: async () => {
      await p.stop();
      rmSync(data, { recursive: true, force: true });
    },
  };
}

/**
 * startServer returns TAMARACK_E2E_URL; or starts TAMARACK_E2E_SERVER_CMD; or, by default, the real stack: the
 * demo seed into a fresh data directory (before serve: the testbed loads its pools when it starts), stripe-mock,
 * and `tamarack serve` with card payments through stripe-mock.
 */
export async function startServer(opts: { port?: number; args?: string[]; /** false: no stripe-mock, card payments off */ cards?: boolean } = {}): Promise<Server> {
  const given = process.env.TAMARACK_E2E_URL;
  if (given) {
    const url = given.replace(/\/$/, '');
    await waitReady(`${url}/readyz`, 30_000, () => null);
    return { url, webhookSecret: process.env.TAMARACK_E2E_WEBHOOK_SECRET, stop: async () => undefined, output: () => '' };
  }
  const port = opts.port ?? (await freePort());
  const addr = `127.0.0.1:${port}`;
  const url = `http://${addr}`;
  const data = mkdtempSync(join(tmpdir(), 'tamarack-e2e-'));
  const procs: Proc[] = [];
  const stop = async () => {
    for (const p of procs.reverse()) await p.stop();
    rmSync(data, { recursive: true, force: true });
  };
  const readyMs = Number(process.env.TAMARACK_E2E_READY_MS ?? 60_000);
  try {
    const custom = process.env.TAMARACK_E2E_SERVER_CMD;
    if (custom) {
      const cmd = custom.replaceAll('{port}', String(port)).replaceAll('{addr}', addr).replaceAll('{data}', data);
      const p = spawnGroup('sh', ['-c', cmd], `command: ${cmd}`);
      procs.push(p);
      await waitReady(`${url}/readyz`, readyMs, p.exited);
      return { url, stop, output: p.output };
    }
    const bin = tamarackBin();
    await promisify(execFile)(bin, ['seed', '--demo', '--data', data, '--public-url', url], { cwd: REPO_ROOT, timeout: 60_000 });
    const args = ['serve', '--data', data, '--addr', addr, '--public-url', url, '--usage-interval', '2s', '--log-level', 'warn', ...(opts.args ?? [])];
    let webhookSecret: string | undefined;
    const mock = opts.cards === false ? null : stripeMockPath();
    if (mock) {
      const stripePort = await freePort();
      // stripe-mock also serves HTTPS (by default on 12112): give it a free port too, so that runs never collide.
      const httpsPort = await freePort();
      const sm = spawnGroup(mock, ['-http-addr', `127.0.0.1:${stripePort}`, '-https-addr', `127.0.0.1:${httpsPort}`], 'stripe-mock');
      procs.push(sm);
      await waitPort(stripePort, 20_000, sm.exited);
      args.push('--stripe-key', 'sk_test_123', '--stripe-api', `http://127.0.0.1:${stripePort}`, '--stripe-webhook-secret', WEBHOOK_SECRET);
      webhookSecret = WEBHOOK_SECRET;
    }
    const srv = spawnGroup(bin, args, 'tamarack serve');
    procs.push(srv);
    await waitReady(`${url}/readyz`, readyMs, srv.exited);
    return { url, webhookSecret, dataDir: data, stop, output: srv.output };
  } catch (e) {
    await stop();
    throw e;
  }
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
