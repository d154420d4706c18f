// smoke-static, signed in: the pages that pull in xterm.js and recharts, rendered under the production CSP with
// a stubbed API (interim, like smoke-static.e2e.ts). It proves the strict style-src holds for the terminal and
// the charts, and that a running sandbox shows its terminal, time left and cost.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { axe, cspViolations, launchBrowser, openPage, screenshot, serious } from './harness';
import { smokeStubs, startStaticServer, type Stub } from './static-server';

const me = {
  user: { id: 'u1', email: 'ada@example.ca', name: 'Ada', is_staff: false, created_at: '2030-01-01T00:00:00Z' },
  memberships: [{ organization: { id: 'o1', name: 'Acme AI', kind: 'sme', verified: true }, role: 'owner' }],
  active_organization_id: 'o1',
};
const inAnHour = () => new Date(Date.now() + 3600_000).toISOString();

const stubs: Stub = (req, body) => {
  const path = (req.url ?? '').split('?')[0];
  const authed = req.headers.authorization === 'Bearer a1';
  if (req.method === 'POST' && path === '/api/v1/identity/refresh') {
    return { status: 200, body: { access_token: 'a1', refresh_token: 'r2', token_type: 'Bearer', expires_in: 900 } };
  }
  if (path === '/api/v1/identity/me' && authed) return { status: 200, body: me };
  if (path === '/api/v1/testbed/sandboxes/sb1') {
    return {
      status: 200,
      body: {
        id: 'sb1', listing_id: 'l1', state: 'running', gpu_model: 'H100', gpu_count: 1, template: 'jupyterlab',
        node: { id: 'n1', hostname: 'gpu-01' }, created_at: '2030-01-01T00:00:00Z', started_at: '2030-01-01T00:00:00Z',
        expires_at: inAnHour(), usage_gpu_seconds: 5400, charge_micro: 3_750_000, charge_display: '3.75 credits',
        endpoints: [{ name: 'jupyterlab', url: '/sandbox-proxy/sb1/lab' }],
      },
    };
  }
  if (path === '/api/v1/billing/wallet') {
    return {
      status: 200,
      body: {
        organization_id: 'o1', purchased_micro: 100_000_000, purchased_display: '100.00 credits', granted_micro: 50_000_000,
        granted_display: '50.00 credits', held_micro: 2_500_000, held_display: '2.50 credits', available_micro: 147_500_000,
        available_display: '147.50 credits',
        grants: [{ grant_id: 'g1', note: 'Programme pilot', remaining_micro: 50_000_000, remaining_display: '50.00 credits', expires_at: '2030-12-31T00:00:00Z', cofund_percent: 50 }],
      },
    };
  }
  if (path === '/api/v1/billing/usage') {
    return {
      status: 200,
      body: {
        items: [
          { day: '2030-01-01', gpu_model: 'H100', gpu_seconds: 7200, charge_micro: 5_000_000 },
          { day: '2030-01-02', gpu_model: 'H100', gpu_seconds: 3600, charge_micro: 2_500_000 },
          { day: '2030-01-02', gpu_model: 'L40S', gpu_seconds: 10800, charge_micro: 3_000_000 },
        ],
        next_cursor: null,
      },
    };
  }
  if (path === '/api/v1/billing/transactions') {
    return {
      status: 200,
      body: { items: [{ id: 't1', created_at: '2030-01-01T00:00:00Z', kind: 'purchase', amount_micro: 100_000_000, amount_display: '100.00 credits', state: 'posted' }], next_cursor: null },
    };
  }
  return smokeStubs(req, body);
};

describe('smoke-static signed in', () => {
  let server: Awaited<ReturnType<typeof startStaticServer>>;
  let browser: Browser;
  beforeAll(async () => {
    server = await startStaticServer(stubs);
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
    await server?.stop();
  });

  async function signedInPage() {
    const w = await openPage(browser, server.url);
    // A returning visitor: only the refresh token survives a reload; the client mints an access token from it.
    await w.context.addInitScript(() => localStorage.setItem('tamarack.refresh_token', 'r1'));
    return w;
  }

  it('sandbox page: terminal on a canvas, time left, cost, JupyterLab link, no CSP violation', async () => {
    const { page, problems, context } = await signedInPage();
    await page.goto('/sandboxes/sb1');
    await page.getByRole('heading', { name: 'Sandbox sb1' }).waitFor();
    await page.locator('.terminal canvas').first().waitFor();
    expect(await page.getByText('3.75 credits').isVisible()).toBe(true);
    expect(await page.getByRole('link', { name: 'Open JupyterLab' }).getAttribute('href')).toBe('/sandbox-proxy/sb1/lab');
    expect(await page.locator('style').count()).toBe(0);
    await screenshot(page, 'smoke-static-sandbox');
    expect(serious(await axe(page, 'smoke-static-sandbox'))).toEqual([]);
    expect(cspViolations(problems)).toEqual([]);
    await context.close();
  });

  it('wallet: balances, usage chart and BigInt sums, no CSP violation', async () => {
    const { page, problems, context } = await signedInPage();
    await page.goto('/wallet');
    await page.getByText('147.50 credits').waitFor();
    await page.locator('.recharts-surface').first().waitFor();
    // 2.5 + 3.0 credits charged on H100 on two days... H100: 5.0 + 2.5 = 7.5; L40S: 3.0
    const byModel = page.getByRole('table', { name: 'By GPU model' });
    expect(await byModel.getByRole('row', { name: /H100/ }).textContent()).toContain('7.50');
    expect(await byModel.getByRole('row', { name: /L40S/ }).textContent()).toContain('3.00');
    await screenshot(page, 'smoke-static-wallet');
    expect(serious(await axe(page, 'smoke-static-wallet'))).toEqual([]);
    expect(cspViolations(problems)).toEqual([]);
    await context.close();
  });
});
