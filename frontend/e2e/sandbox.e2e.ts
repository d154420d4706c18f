// The launch form's summary and the sandbox page against a real `tamarack serve` (demo seed: the demo pool's node
// of 8 declared h100-80gb GPUs, the compute listing at 2.50 credits per GPU-hour for 15 minutes to 24 hours, the
// SME's grant with 50 % co-funding), in English and French, on a desktop and a 390 px phone: the summary's figures
// and its bounded inputs, the provisioning steps then running with the cost so far and the time left, the demo
// pool's GPUs "not measured", the terminal's escape key, and a stop through the confirmation dialog that ends in
// "Total" and a reason in words. Every page gets a screenshot and an axe check; CSP violations fail.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import en from '../src/locales/en.json';
import fr from '../src/locales/fr.json';
import { axe, cspViolations, DEMO_PASSWORD, launchBrowser, openPage, screenshot, serious, startServer, type Server, type Watched } from './harness';

type Locale = typeof en;
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

function tr(s: string, vars: Record<string, string | number> = {}): string {
  return s.replace(/\{\{(\w+)\}\}/g, (_, k: string) => String(vars[k] ?? ''));
}

/** digits keeps the digits of a money text (grouping and decimal separators differ by language). */
function digits(s: string | null): string {
  return (s ?? '').replace(/\D/g, '');
}

/** micro reads a money text of the page in micro-credits (English 1,234.5; French 1 234,5). */
function micro(s: string | null, lang: 'en' | 'fr'): bigint {
  let t = (s ?? '').replace(/[^\d.,-]/g, '');
  t = lang === 'fr' ? t.replace(/\./g, '').replace(',', '.') : t.replace(/,/g, '');
  const [whole, frac = ''] = t.split('.');
  return BigInt(whole || '0') * 1_000_000n + BigInt(frac.padEnd(6, '0').slice(0, 6));
}

async function check(a: Watched, name: string) {
  await a.page.waitForFunction(() => !document.querySelector('.loading'), undefined, { timeout: 15_000 }).catch(() => undefined);
  await screenshot(a.page, name);
  expect(serious(await axe(a.page, name)), `${name}: serious accessibility violations`).toEqual([]);
  expect(cspViolations(a.problems), `${name}: CSP violations`).toEqual([]);
}

async function signIn(a: Watched, L: Locale, lang: 'en' | 'fr', phone: boolean) {
  const p = a.page;
  await p.goto('/');
  if (lang === 'fr') {
    // On a phone the language switch is in the folded menu.
    if (phone) await p.getByRole('button', { name: en.header.menu }).click();
    await p.getByRole('button', { name: tr(en.header.switch_language_to, { language: 'Français' }) }).click();
    await p.waitForFunction(() => document.documentElement.lang === 'fr');
  }
  await p.goto('/signin');
  await p.getByLabel(L.signup.email).fill(SME);
  await p.getByLabel(L.signup.password, { exact: true }).fill(DEMO_PASSWORD);
  await p.getByRole('button', { name: L.signin.submit, exact: true }).click();
  await p.waitForURL((u) => !u.pathname.startsWith('/signin'));
}

/** demoListing is the demo compute listing's id, from the testbed's catalogue. */
async function demoListing(): Promise<{ id: string; counts: { gpu_count: number; free_now: number }[] }> {
  const res = await fetch(`${server.url}/api/v1/testbed/listings`);
  const body = (await res.json()) as { items: { id: string; gpu_model: string; gpu_counts: { gpu_count: number; free_now: number }[] }[] };
  const l = body.items.find((x) => x.gpu_model === 'h100-80gb');
  if (!l) throw new Error('no demo h100 listing');
  return { id: l.id, counts: l.gpu_counts };
}

const RUNS: { lang: 'en' | 'fr'; phone: boolean }[] = [
  { lang: 'en', phone: false },
  { lang: 'fr', phone: true },
  { lang: 'fr', phone: false },
  { lang: 'en', phone: true },
];

describe('launch summary and sandbox page', () => {
  for (const { lang, phone } of RUNS) {
    const L = (lang === 'en' ? en : fr) as Locale;
    const tag = `${lang}-${phone ? 'phone' : 'desktop'}`;
    it(`${tag}: the summary, provisioning, running, the terminal's escape key, stop with confirmation`, async () => {
      const a = await openPage(browser, server.url, phone ? { width: 390, height: 844 } : { width: 1280, height: 900 });
      const p: Page = a.page;
      try {
        await signIn(a, L, lang, phone);
        const listing = await demoListing();
        // The demo node has 8 GPUs: every count from 1 to 8, never more (no "64 GPUs").
        expect(listing.counts.map((c) => c.gpu_count)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
        await p.goto(`/sandboxes/new?listing=${encodeURIComponent(listing.id)}`);
        await p.getByRole('heading', { name: L.sandbox.launch_title, level: 1 }).waitFor();
        await p.getByLabel(L.sandbox.template).selectOption('shell');

        // Bounded inputs: the counts the pool allows, the durations within the listing's 15 minutes to 24 hours.
        const count = p.getByLabel(L.sandbox.gpu_count);
        expect(await count.locator('option').evaluateAll((os) => os.map((o) => (o as HTMLOptionElement).value))).toEqual(['1', '2', '3', '4', '5', '6', '7', '8']);
        const durations = await p.getByLabel(L.sandbox.duration).locator('option').evaluateAll((os) => os.map((o) => Number((o as HTMLOptionElement).value)));
        expect(Math.min(...durations)).toBeGreaterThanOrEqual(15);
        expect(Math.max(...durations)).toBe(24 * 60);

        // The summary's figures for 2 GPUs × 60 minutes at 2.50 per GPU-hour: 5.00 per hour, 5.00 held, half
        // co-funded (2.50), the balance after the hold = available - 5.00, 4 sandboxes of 2 GPUs free now.
        await count.selectOption('2');
        await p.getByLabel(L.sandbox.duration).selectOption('60');
        const sum = p.getByTestId('launch-summary');
        await expect.poll(() => sum.getByTestId('sum-gpus').textContent()).toBe('h100-80gb × 2');
        expect(digits(await sum.getByTestId('sum-rate').textContent())).toBe('500');
        expect(digits(await sum.getByTestId('estimate').textContent())).toBe('500');
        expect(digits(await sum.getByTestId('sum-cofund').textContent())).toBe('250');
        expect(await sum.getByTestId('sum-cpu').textContent()).toMatch(/^4 vCPU/);
        expect(await sum.getByTestId('sum-image').textContent()).toBe('shell');
        await expect.poll(async () => digits(await sum.getByTestId('available').textContent())).not.toBe('');
        const avail = micro(await sum.getByTestId('available').textContent(), lang);
        const after = micro(await sum.getByTestId('sum-after').textContent(), lang);
        expect(avail - after).toBe(5_000_000n); // 5.00 held
        expect(await sum.getByTestId('sum-free').textContent()).toContain('4');
        await check(a, `launch-summary-${tag}`);

        // Provisioning: the first answer of the sandbox is shown as it is while its image is pulled (held here, so
        // that the steps are seen whatever the host's speed); every later answer is the server's own.
        await count.selectOption('1');
        await p.getByLabel(L.sandbox.duration).selectOption('15');
        let release = () => undefined as void;
        const released = new Promise<void>((ok) => (release = ok));
        let open = false;
        const SANDBOX = /\/api\/v1\/testbed\/sandboxes\/[^/?]+(\?wait_until=.*)?$/;
        await p.route(SANDBOX, async (route) => {
          if (open || route.request().method() !== 'GET') return route.continue();
          if (route.request().url().includes('wait_until=')) {
            await released; // the held wait answers once the steps have been seen
            return route.continue();
          }
          const res = await route.fetch();
          const body = await res.json();
          body.state = 'provisioning';
          body.progress = { phase: 'pulling', done_bytes: 12_582_912, total_bytes: 24_117_248, updated_at: body.created_at };
          await route.fulfill({ response: res, json: body });
        });
        await p.getByRole('button', { name: L.sandbox.launch, exact: true }).click();
        await p.waitForURL(/\/sandboxes\/[^/]+$/);
        const steps = p.getByTestId('provision-steps');
        await steps.waitFor({ timeout: 15_000 });
        expect(await steps.getByTestId('sandbox-progress').textContent()).toMatch(/12.*23/);
        expect(await steps.locator('[aria-current="step"]').textContent()).toContain(L.sandbox.step_pulling);
        expect(await steps.getByTestId('elapsed').textContent()).toBeTruthy();
        await check(a, `sandbox-provisioning-${tag}`);

        open = true;
        release();

        // Running: rate, cost so far, projected total and time left.
        await p.getByTestId('sandbox-state').getByText(L.state.running).waitFor({ timeout: 90_000 });
        await p.unroute(SANDBOX);
        expect(await p.getByTestId('charge-label').textContent()).toBe(L.sandbox.cost_so_far);
        expect(digits(await p.getByTestId('projected').textContent())).toBe('063'); // 0.625 for 15 minutes, shown with two decimals (half away from zero)
        await expect.poll(() => p.getByTestId('time-left').textContent()).toMatch(/\d/);
        // The demo pool's GPUs are declared: not measured, and said so (no flat zero).
        await p.getByTestId('gpu-not-measured').waitFor();
        expect(await p.getByTestId('gpu-not-measured').textContent()).toContain(L.sandbox.gpu_not_measured_declared_devices);
        expect(await p.locator('.gpu-charts').count()).toBe(0);

        // The terminal is no keyboard trap: its hint is shown, and Ctrl+Shift+E moves the focus out of it.
        await p.getByText(L.sandbox.terminal_open).waitFor({ timeout: 30_000 });
        await p.getByText(L.sandbox.terminal_escape_hint).waitFor();
        await p.getByRole('application', { name: L.sandbox.terminal }).click();
        await p.keyboard.press('Tab'); // goes to the shell
        expect(await p.evaluate(() => !!document.activeElement?.closest('.terminal'))).toBe(true);
        await p.keyboard.press('Control+Shift+KeyE');
        await expect.poll(() => p.evaluate(() => document.activeElement?.getAttribute('data-testid'))).toBe('terminal-left');
        await check(a, `sandbox-running-${tag}`);

        // Stop through the dialog: Escape cancels (the focus back on Stop), then confirm.
        const stop = p.getByRole('button', { name: L.sandbox.stop, exact: true });
        await stop.click();
        const dialog = p.getByRole('dialog', { name: L.sandbox.stop_title });
        await dialog.waitFor();
        expect(await p.evaluate(() => document.activeElement?.textContent)).toBe(L.common.cancel);
        await check(a, `sandbox-stop-dialog-${tag}`);
        await p.keyboard.press('Escape');
        await dialog.waitFor({ state: 'detached' });
        expect(await p.evaluate(() => document.activeElement?.getAttribute('data-testid'))).toBe('stop');
        await p.getByTestId('sandbox-state').getByText(L.state.running).waitFor();
        await stop.click();
        await dialog.getByRole('button', { name: L.sandbox.stop_confirm }).click();
        await p.getByTestId('sandbox-state').getByText(L.state.stopped).waitFor({ timeout: 60_000 });
        await expect.poll(() => p.getByTestId('charge-label').textContent()).toBe(L.sandbox.total);
        expect(await p.getByTestId('end-reason').textContent()).toBe(L.stop_reason_sentence.user);
        expect(await p.getByText(/exit code/).count()).toBe(0);
        await check(a, `sandbox-stopped-${tag}`);
      } finally {
        await a.context.close();
      }
    }, 240_000);
  }
});
