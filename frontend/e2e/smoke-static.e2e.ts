// smoke-static: the interim smoke journey against dist/ served by static-server.ts with stubbed identity
// endpoints. It checks what needs no backend: the home page, the French switch, and sign-up field errors taken
// from a problem response; every page gets a screenshot, an axe check, and a check for CSP violations.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { axe, cspViolations, launchBrowser, openPage, screenshot, serious } from './harness';
import { startStaticServer } from './static-server';

describe('smoke-static', () => {
  let server: Awaited<ReturnType<typeof startStaticServer>>;
  let browser: Browser;

  beforeAll(async () => {
    server = await startStaticServer();
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('renders the home page without CSP violations or serious accessibility problems', async () => {
    const { page, problems, context } = await openPage(browser, server.url);
    await page.goto('/');
    await expect(page.getByRole('heading', { level: 1 }).textContent()).resolves.toContain('AI models, datasets and GPU time');
    await page.getByRole('link', { name: 'Create an account' }).first().waitFor();
    expect(await page.getByRole('button', { name: 'Menu' }).isVisible()).toBe(false); // desktop: nav shown inline
    await screenshot(page, 'smoke-static-home');
    expect(serious(await axe(page, 'smoke-static-home'))).toEqual([]);
    expect(cspViolations(problems)).toEqual([]);
    await context.close();
  });

  it('switches to French: the heading changes, <html lang> follows, and a reload remembers it', async () => {
    const { page, context } = await openPage(browser, server.url);
    await page.goto('/');
    await page.getByRole('button', { name: /switch the language to français/i }).click();
    await expect(page.getByRole('heading', { level: 1 }).textContent()).resolves.toContain('Modèles d’IA');
    expect(await page.getAttribute('html', 'lang')).toBe('fr');
    await page.reload();
    await expect(page.getByRole('heading', { level: 1 }).textContent()).resolves.toContain('Modèles d’IA');
    await screenshot(page, 'smoke-static-home-fr');
    expect(serious(await axe(page, 'smoke-static-home-fr'))).toEqual([]);
    await context.close();
  });

  it('shows the field errors of a problem response next to the sign-up fields', async () => {
    const { page, problems, context } = await openPage(browser, server.url);
    await page.goto('/signup');
    await page.getByLabel('Email').fill('not-an-email');
    await page.getByLabel('Password', { exact: true }).fill('short');
    await page.getByRole('button', { name: 'Create the account' }).click();
    const alert = page.getByRole('alert');
    await alert.waitFor();
    expect(await alert.textContent()).toContain('The request has invalid fields.');
    expect(await page.getByLabel('Email').getAttribute('aria-invalid')).toBe('true');
    expect(await page.locator(`#${await page.getByLabel('Email').getAttribute('id').then((id) => CSS_escape(id!))}-error`).textContent()).toBe(
      'Enter a valid email address.',
    );
    expect(await page.getByText('Use at least 12 characters.').isVisible()).toBe(true);
    expect(await page.getByText('Name your organisation.').isVisible()).toBe(true);
    await screenshot(page, 'smoke-static-signup-errors');
    expect(serious(await axe(page, 'smoke-static-signup-errors'))).toEqual([]);
    expect(cspViolations(problems)).toEqual([]);
    await context.close();
  });

  it('fits a phone screen: the menu button opens the navigation', async () => {
    const { page, context } = await openPage(browser, server.url, { width: 390, height: 844 });
    await page.goto('/catalogue');
    const toggle = page.getByRole('button', { name: 'Menu' });
    expect(await toggle.getAttribute('aria-expanded')).toBe('false');
    await toggle.click();
    expect(await toggle.getAttribute('aria-expanded')).toBe('true');
    await page.getByRole('link', { name: 'Catalogue' }).first().waitFor();
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    expect(overflow).toBeLessThanOrEqual(0);
    await screenshot(page, 'smoke-static-catalogue-phone');
    expect(serious(await axe(page, 'smoke-static-catalogue-phone'))).toEqual([]);
    await context.close();
  });
});

// React's useId yields ids like «r1» or :r1:, which need escaping in a CSS selector.
function CSS_escape(id: string): string {
  return id.replace(/([^a-zA-Z0-9_-])/g, '\\$1');
}
