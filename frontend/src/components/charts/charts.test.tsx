import { act, render, screen, waitFor, within } from '@testing-library/react';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import i18n, { setupI18n } from '../../i18n';
import { fakeFetch, json } from '../../test/fakeFetch';
import { dayLabel, hours, MonthlyStatements, Receipts, SpendCharts } from './index';

setupI18n('en');

beforeEach(async () => {
  await act(() => i18n.changeLanguage('en'));
});
afterEach(() => vi.unstubAllGlobals());

describe('chart labels', () => {
  it('labels UTC days as dates in the reader language, never shifted by the time zone', () => {
    expect(dayLabel('2026-03-01', 'en', true)).toBe('March 1, 2026');
    expect(dayLabel('2026-03-01', 'fr', true)).toBe('1 mars 2026');
    expect(dayLabel('bad', 'en')).toBe('bad');
    expect(hours(5_400_000, 'fr')).toBe('1,5');
    expect(hours(7_200, 'en')).toBe('0.002');
  });
});

describe('spend charts', () => {
  it('summarise the data in words and show a helpful empty state', async () => {
    const day = (d: string, paid: number, cof: number, mtd: number) => ({ day: d, charge_micro: paid + cof, cofunded_micro: cof, paid_micro: paid, month_to_date_micro: mtd });
    const f = fakeFetch({
      'GET /api/v1/billing/orgs/o1/charts/spend': () =>
        json(200, {
          from: '2026-03-09', to: '2026-03-10', monthly_budget_micro: 50_000_000,
          days: [day('2026-03-09', 5_000_000, 5_000_000, 5_000_000), day('2026-03-10', 2_500_000, 2_500_000, 7_500_000)],
          by_sandbox: [{ sandbox_id: 'sb-1', listing_id: 'l1', listing_title: 'H100 Montréal', gpu_model: 'H100', millis: 3_600_000, charge_micro: 10_000_000, cofunded_micro: 5_000_000, shortfall_micro: 0, paid_micro: 5_000_000 }],
          by_listing: [{ listing_id: 'l1', listing_title: 'H100 Montréal', millis: 3_600_000, charge_micro: 10_000_000, cofunded_micro: 5_000_000, paid_micro: 5_000_000 }],
        }),
      'GET /api/v1/billing/orgs/empty/charts/spend': () => json(200, { from: '2026-03-09', to: '2026-03-10', monthly_budget_micro: 0, days: [day('2026-03-09', 0, 0, 0)], by_sandbox: [], by_listing: [] }),
    });
    vi.stubGlobal('fetch', f.fetch);
    const { unmount } = render(<SpendCharts orgId="o1" />);
    const spend = await screen.findByTestId('chart-spend');
    await waitFor(() => expect(within(spend).getByText(/you paid 7\.50 credits and the programme co-funded 7\.50/)).toBeInTheDocument());
    expect(within(spend).getByText(/7\.50 of your 50\.00 credit budget/)).toBeInTheDocument();
    expect(within(spend).getByRole('img')).toHaveAccessibleName(/you paid 7\.50 credits/);
    expect(within(spend).getByRole('heading', { level: 2, name: 'Spend per day' })).toBeInTheDocument();
    expect(within(screen.getByTestId('chart-by-listing')).getByText('1 listing, H100 Montréal, was charged 10.00 credits.')).toBeInTheDocument();
    // The days are the viewer's: the request names the browser's time zone.
    const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    const asked = f.calls.find((c) => c.url.includes('/orgs/o1/charts/spend'));
    expect(new URL(asked!.url, 'http://x').searchParams.get('tz')).toBe(zone);
    unmount();
    render(<SpendCharts orgId="empty" />);
    expect(await within(await screen.findByTestId('chart-spend')).findByText(/Charts appear once a sandbox has run/)).toBeInTheDocument();
  });
});

describe('documents', () => {
  it('link each credited purchase to its receipt and each month to its statement', async () => {
    const f = fakeFetch({
      'GET /api/v1/billing/orgs/o1/purchases': () =>
        json(200, {
          items: [
            { id: 'p2', credits: 5, amount_micro: 5_000_000, cad_cents: 500, method: 'stripe', status: 'pending', reference: '', refunded_micro: 0, created_at: '2026-03-10T00:00:00Z', tax_cents: 0, total_cad_cents: 500, organization_id: 'o1' },
            { id: 'p1', credits: 1234, amount_micro: 1_234_000_000, cad_cents: 123_400, method: 'offline', status: 'paid', reference: 'PO', refunded_micro: 0, created_at: '2026-03-09T00:00:00Z', receipt_path: '/api/v1/billing/orgs/o1/purchases/p1/receipt.pdf', tax_cents: 0, total_cad_cents: 123_400, organization_id: 'o1' },
          ],
        }),
      'GET /api/v1/billing/orgs/o1/statements': () => json(200, { items: [{ month: '2026-03', pdf_path: '/api/v1/billing/orgs/o1/statements/2026-03.pdf' }] }),
    });
    vi.stubGlobal('fetch', f.fetch);
    render(
      <>
        <Receipts orgId="o1" />
        <MonthlyStatements orgId="o1" />
      </>,
    );
    const receipts = await screen.findAllByRole('link', { name: /Receipt \(PDF\)/ });
    expect(receipts).toHaveLength(1);
    expect(receipts[0]).toHaveAttribute('href', '/api/v1/billing/orgs/o1/purchases/p1/receipt.pdf');
    expect(screen.getByText('Not credited')).toBeInTheDocument();
    expect(await screen.findByRole('link', { name: 'Statement for March 2026 (PDF)' })).toHaveAttribute('href', '/api/v1/billing/orgs/o1/statements/2026-03.pdf');
  });
});
