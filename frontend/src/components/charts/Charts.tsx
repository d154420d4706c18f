// Charts where people would rather look than read: spend against the budget, spend by sandbox and listing,
// vendor earnings, pool utilisation, programme spend and co-funding. Each chart has a heading, a text summary
// (what a screen reader announces for the picture) and its data as a table behind a disclosure; amounts are
// integer micro-credits formatted for the reader's language; days are calendar days of the viewer's time zone
// (the UI sends its zone, and the API counts the days there), labelled as dates.

import { useId, type ReactNode } from 'react';
import { useTranslation } from 'react-i18next';
import { Bar, BarChart, CartesianGrid, ComposedChart, Legend, Line, ReferenceLine, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';
import { formatMicro, sumMicro } from '../../api/money';
import { AsyncBlock, DataTable } from '../ui';
import { useAsync } from '../../lib/hooks';
import { charts } from './api';

/** Colours with at least 4.5:1 contrast on white (text) and 3:1 between neighbours' edges. */
export const SERIES = ['#2f6b3a', '#a0521a', '#3b5b92', '#8a3b8f', '#5e6d1a', '#a33a3a'];

function locale(lang: string): string {
  return lang.startsWith('fr') ? 'fr-CA' : 'en-CA';
}

/** dayLabel writes a calendar day (yyyy-mm-dd) as a short date in the reader's language (formatted as the date it names). */
export function dayLabel(day: string, lang: string, long = false): string {
  const d = new Date(`${day}T00:00:00Z`);
  if (Number.isNaN(d.getTime())) return day;
  return new Intl.DateTimeFormat(locale(lang), long ? { dateStyle: 'long', timeZone: 'UTC' } : { month: 'short', day: 'numeric', timeZone: 'UTC' }).format(d);
}

/** hours writes device-milliseconds as GPU-hours (not money: a float is fine here). */
export function hours(ms: number, lang: string): string {
  const h = ms / 3_600_000;
  return new Intl.NumberFormat(locale(lang), { maximumFractionDigits: h !== 0 && h < 0.1 ? 3 : 1 }).format(h);
}

function credits(micro: number | bigint, lang: string): string {
  return formatMicro(micro, lang);
}

/** The chart's frame: heading, summary, the picture (an image labelled by the summary) and the data table. */
export function ChartSection({
  title,
  summary,
  loading,
  error,
  onRetry,
  empty,
  emptyText,
  table,
  children,
  testId,
}: {
  title: string;
  summary: string;
  loading: boolean;
  error: unknown;
  onRetry?: () => void;
  empty: boolean;
  emptyText: string;
  table: ReactNode;
  children: ReactNode;
  testId: string;
}) {
  const { t } = useTranslation();
  const id = useId();
  return (
    <section className="chart-section" aria-labelledby={id} data-testid={testId}>
      <h2 id={id}>{title}</h2>
      <AsyncBlock loading={loading} error={error} empty={empty} emptyText={emptyText} onRetry={onRetry}>
        <p className="chart-summary">{summary}</p>
        <div className="chart__box" role="img" aria-label={summary}>
          <ResponsiveContainer width="100%" height={260}>
            {children as React.ReactElement}
          </ResponsiveContainer>
        </div>
        <details className="chart-data">
          <summary>{t('charts.show_data')}</summary>
          {table}
        </details>
      </AsyncBlock>
    </section>
  );
}

function useLang() {
  const { t, i18n } = useTranslation();
  return { t, lang: i18n.language };
}

/** SpendCharts: the organisation's spend per day against its monthly budget, then by sandbox and by listing. */
export function SpendCharts({ orgId }: { orgId: string }) {
  const { t, lang } = useLang();
  const q = useAsync(() => charts().spend(orgId), [orgId]);
  const c = q.data;
  const days = c?.days ?? [];
  const total = sumMicro(days.map((d) => d.paid_micro));
  const cofunded = sumMicro(days.map((d) => d.cofunded_micro));
  const hasSpend = days.some((d) => d.charge_micro !== 0);
  const budget = c?.monthly_budget_micro ?? 0;
  const lastMTD = days.length ? days[days.length - 1].month_to_date_micro : 0;
  const summary = c
    ? budget
      ? t('charts.spend_summary_budget', { total: credits(total, lang), cofunded: credits(cofunded, lang), from: dayLabel(c.from, lang, true), to: dayLabel(c.to, lang, true), mtd: credits(lastMTD, lang), budget: credits(budget, lang) })
      : t('charts.spend_summary', { total: credits(total, lang), cofunded: credits(cofunded, lang), from: dayLabel(c.from, lang, true), to: dayLabel(c.to, lang, true), mtd: credits(lastMTD, lang) })
    : '';
  const money = (v: number) => credits(Math.round(v), lang);
  const bySandbox = c?.by_sandbox ?? [];
  const byListing = (c?.by_listing ?? []).map((l) => ({ ...l, name: l.listing_title || l.listing_id || t('charts.unknown_listing') }));
  const top = bySandbox[0];
  const sbSummary = top
    ? t('charts.by_sandbox_summary', { count: bySandbox.length, top: top.sandbox_id, amount: credits(top.charge_micro, lang) })
    : '';
  const lsSummary = byListing[0]
    ? t('charts.by_listing_summary', { count: byListing.length, top: byListing[0].name, amount: credits(byListing[0].charge_micro, lang) })
    : '';
  return (
    <>
      <ChartSection
        testId="chart-spend"
        title={t('charts.spend_title')}
        summary={summary}
        loading={q.loading}
        error={q.error}
        onRetry={q.reload}
        empty={!q.loading && !hasSpend}
        emptyText={t('charts.spend_empty')}
        table={
          <DataTable caption={t('charts.spend_title')} captionHidden columns={[t('charts.day'), { label: t('charts.paid'), num: true }, { label: t('charts.cofunded'), num: true }, { label: t('charts.month_to_date'), num: true }]}>
            {days.map((d) => (
              <tr key={d.day}>
                <td>{dayLabel(d.day, lang, true)}</td>
                <td className="num money">{credits(d.paid_micro, lang)}</td>
                <td className="num money">{credits(d.cofunded_micro, lang)}</td>
                <td className="num money">{credits(d.month_to_date_micro, lang)}</td>
              </tr>
            ))}
          </DataTable>
        }
      >
        <ComposedChart data={days} accessibilityLayer={false}>
          <CartesianGrid strokeDasharray="3 3" />
          <XAxis dataKey="day" tickFormatter={(d: string) => dayLabel(d, lang)} minTickGap={16} />
          <YAxis tickFormatter={money} width={80} allowDecimals={false} />
          <Tooltip labelFormatter={(d) => dayLabel(String(d), lang, true)} formatter={(v) => money(Number(v))} />
          <Legend />
          <Bar dataKey="paid_micro" name={t('charts.paid')} stackId="s" fill={SERIES[0]} />
          <Bar dataKey="cofunded_micro" name={t('charts.cofunded')} stackId="s" fill={SERIES[1]} />
          <Line dataKey="month_to_date_micro" name={t('charts.month_to_date')} stroke={SERIES[2]} dot={false} strokeWidth={2} />
          {budget > 0 && <ReferenceLine y={budget} stroke={SERIES[5]} strokeDasharray="6 3" label={{ value: t('charts.budget'), fill: '#6b1f1f', position: 'insideTopRight' }} />}
        </ComposedChart>
      </ChartSection>
      <ChartSection
        testId="chart-by-sandbox"
        title={t('charts.by_sandbox_title')}
        summary={sbSummary}
        loading={q.loading}
        error={q.error}
        empty={!q.loading && bySandbox.length === 0}
        emptyText={t('charts.spend_empty')}
        table={<UsageTable rows={bySandbox.map((s) => ({ key: s.sandbox_id, name: s.sandbox_id, sub: s.listing_title || s.listing_id, ...s }))} first={t('charts.sandbox')} />}
      >
        <BarChart data={bySandbox} layout="vertical" accessibilityLayer={false}>
          <CartesianGrid strokeDasharray="3 3" />
          <XAxis type="number" tickFormatter={money} allowDecimals={false} />
          <YAxis type="category" dataKey="sandbox_id" width={110} tickFormatter={(s: string) => (s.length > 14 ? `${s.slice(0, 13)}…` : s)} />
          <Tooltip formatter={(v) => money(Number(v))} />
          <Legend />
          <Bar dataKey="paid_micro" name={t('charts.paid')} stackId="s" fill={SERIES[0]} />
          <Bar dataKey="cofunded_micro" name={t('charts.cofunded')} stackId="s" fill={SERIES[1]} />
        </BarChart>
      </ChartSection>
      <ChartSection
        testId="chart-by-listing"
        title={t('charts.by_listing_title')}
        summary={lsSummary}
        loading={q.loading}
        error={q.error}
        empty={!q.loading && byListing.length === 0}
        emptyText={t('charts.spend_empty')}
        table={<UsageTable rows={byListing.map((l) => ({ key: l.listing_id, sub: '', ...l }))} first={t('charts.listing')} />}
      >
        <BarChart data={byListing} layout="vertical" accessibilityLayer={false}>
          <CartesianGrid strokeDasharray="3 3" />
          <XAxis type="number" tickFormatter={money} allowDecimals={false} />
          <YAxis type="category" dataKey="name" width={140} tickFormatter={(s: string) => (s.length > 18 ? `${s.slice(0, 17)}…` : s)} />
          <Tooltip formatter={(v) => money(Number(v))} />
          <Legend />
          <Bar dataKey="paid_micro" name={t('charts.paid')} stackId="s" fill={SERIES[0]} />
          <Bar dataKey="cofunded_micro" name={t('charts.cofunded')} stackId="s" fill={SERIES[1]} />
        </BarChart>
      </ChartSection>
    </>
  );
}

function UsageTable({ rows, first }: { rows: { key: string; name: string; sub: string; millis: number; charge_micro: number; cofunded_micro: number; paid_micro: number }[]; first: string }) {
  const { t, lang } = useLang();
  return (
    <DataTable caption={first} captionHidden columns={[first, { label: t('charts.gpu_hours'), num: true }, { label: t('charts.charged'), num: true }, { label: t('charts.cofunded'), num: true }, { label: t('charts.paid'), num: true }]}>
      {rows.map((r) => (
        <tr key={r.key}>
          <td>
            <span className="mono small">{r.name}</span>
            {r.sub ? <span className="muted small"> · {r.sub}</span> : null}
          </td>
          <td className="num">{hours(r.millis, lang)}</td>
          <td className="num money">{credits(r.charge_micro, lang)}</td>
          <td className="num money">{credits(r.cofunded_micro, lang)}</td>
          <td className="num money">{credits(r.paid_micro, lang)}</td>
        </tr>
      ))}
    </DataTable>
  );
}

/** EarningsChart: what a vendor earned per day from accelerator time and orders. */
export function EarningsChart({ orgId }: { orgId: string }) {
  const { t, lang } = useLang();
  const q = useAsync(() => charts().earnings(orgId), [orgId]);
  const days = q.data?.days ?? [];
  const total = sumMicro(days.flatMap((d) => [d.usage_micro, d.orders_micro]));
  const money = (v: number) => credits(Math.round(v), lang);
  const summary = q.data ? t('charts.earnings_summary', { total: credits(total, lang), from: dayLabel(q.data.from, lang, true), to: dayLabel(q.data.to, lang, true) }) : '';
  return (
    <ChartSection
      testId="chart-earnings"
      title={t('charts.earnings_title')}
      summary={summary}
      loading={q.loading}
      error={q.error}
      onRetry={q.reload}
      empty={!q.loading && total === 0n}
      emptyText={t('charts.earnings_empty')}
      table={
        <DataTable caption={t('charts.earnings_title')} captionHidden columns={[t('charts.day'), { label: t('charts.usage_sold'), num: true }, { label: t('charts.orders'), num: true }]}>
          {days.map((d) => (
            <tr key={d.day}>
              <td>{dayLabel(d.day, lang, true)}</td>
              <td className="num money">{credits(d.usage_micro, lang)}</td>
              <td className="num money">{credits(d.orders_micro, lang)}</td>
            </tr>
          ))}
        </DataTable>
      }
    >
      <BarChart data={days} accessibilityLayer={false}>
        <CartesianGrid strokeDasharray="3 3" />
        <XAxis dataKey="day" tickFormatter={(d: string) => dayLabel(d, lang)} minTickGap={16} />
        <YAxis tickFormatter={money} width={80} allowDecimals={false} />
        <Tooltip labelFormatter={(d) => dayLabel(String(d), lang, true)} formatter={(v) => money(Number(v))} />
        <Legend />
        <Bar dataKey="usage_micro" name={t('charts.usage_sold')} stackId="e" fill={SERIES[0]} />
        <Bar dataKey="orders_micro" name={t('charts.orders')} stackId="e" fill={SERIES[2]} />
      </BarChart>
    </ChartSection>
  );
}

/** UtilisationChart: GPU-hours used against GPU-hours offered per day, for a vendor's pools or (staff) all. */
export function UtilisationChart() {
  const { t, lang } = useLang();
  const q = useAsync(() => charts().utilisation(), []);
  const days = (q.data?.days ?? []).map((d) => ({ ...d, used: d.used_device_ms / 3_600_000, available: d.available_device_ms / 3_600_000 }));
  const used = days.reduce((a, d) => a + d.used_device_ms, 0);
  const avail = days.reduce((a, d) => a + d.available_device_ms, 0);
  const pct = avail > 0 ? new Intl.NumberFormat(locale(lang), { style: 'percent', maximumFractionDigits: 1 }).format(used / avail) : '—';
  const summary = q.data
    ? t('charts.utilisation_summary', { used: hours(used, lang), available: hours(avail, lang), pct, count: q.data.pool_ids.length, from: dayLabel(q.data.from, lang, true), to: dayLabel(q.data.to, lang, true) })
    : '';
  const fmt = (v: number) => new Intl.NumberFormat(locale(lang), { maximumFractionDigits: 1 }).format(v);
  return (
    <ChartSection
      testId="chart-utilisation"
      title={t('charts.utilisation_title')}
      summary={summary}
      loading={q.loading}
      error={q.error}
      onRetry={q.reload}
      empty={!q.loading && avail === 0}
      emptyText={t('charts.utilisation_empty')}
      table={
        <DataTable caption={t('charts.utilisation_title')} captionHidden columns={[t('charts.day'), { label: t('charts.used_hours'), num: true }, { label: t('charts.available_hours'), num: true }]}>
          {days.map((d) => (
            <tr key={d.day}>
              <td>{dayLabel(d.day, lang, true)}</td>
              <td className="num">{hours(d.used_device_ms, lang)}</td>
              <td className="num">{hours(d.available_device_ms, lang)}</td>
            </tr>
          ))}
        </DataTable>
      }
    >
      <ComposedChart data={days} accessibilityLayer={false}>
        <CartesianGrid strokeDasharray="3 3" />
        <XAxis dataKey="day" tickFormatter={(d: string) => dayLabel(d, lang)} minTickGap={16} />
        <YAxis tickFormatter={fmt} width={60} />
        <Tooltip labelFormatter={(d) => dayLabel(String(d), lang, true)} formatter={(v) => fmt(Number(v))} />
        <Legend />
        <Bar dataKey="used" name={t('charts.used_hours')} fill={SERIES[0]} />
        <Line dataKey="available" name={t('charts.available_hours')} stroke={SERIES[2]} dot={false} strokeWidth={2} type="stepAfter" />
      </ComposedChart>
    </ChartSection>
  );
}

/** ProgrammeChart: grants given, grant credits spent and co-funding per day (staff). */
export function ProgrammeChart() {
  const { t, lang } = useLang();
  const q = useAsync(() => charts().programme(), []);
  const days = q.data?.days ?? [];
  const spent = sumMicro(days.map((d) => d.grant_spent_micro));
  const cof = sumMicro(days.map((d) => d.cofunded_micro));
  const granted = sumMicro(days.map((d) => d.granted_micro));
  const money = (v: number) => credits(Math.round(v), lang);
  const summary = q.data
    ? t('charts.programme_summary', { granted: credits(granted, lang), spent: credits(spent, lang), cofunded: credits(cof, lang), from: dayLabel(q.data.from, lang, true), to: dayLabel(q.data.to, lang, true) })
    : '';
  return (
    <ChartSection
      testId="chart-programme"
      title={t('charts.programme_title')}
      summary={summary}
      loading={q.loading}
      error={q.error}
      onRetry={q.reload}
      empty={!q.loading && spent === 0n && cof === 0n && granted === 0n}
      emptyText={t('charts.programme_empty')}
      table={
        <DataTable caption={t('charts.programme_title')} captionHidden columns={[t('charts.day'), { label: t('charts.granted'), num: true }, { label: t('charts.grant_spent'), num: true }, { label: t('charts.cofunded'), num: true }]}>
          {days.map((d) => (
            <tr key={d.day}>
              <td>{dayLabel(d.day, lang, true)}</td>
              <td className="num money">{credits(d.granted_micro, lang)}</td>
              <td className="num money">{credits(d.grant_spent_micro, lang)}</td>
              <td className="num money">{credits(d.cofunded_micro, lang)}</td>
            </tr>
          ))}
        </DataTable>
      }
    >
      <BarChart data={days} accessibilityLayer={false}>
        <CartesianGrid strokeDasharray="3 3" />
        <XAxis dataKey="day" tickFormatter={(d: string) => dayLabel(d, lang)} minTickGap={16} />
        <YAxis tickFormatter={money} width={80} allowDecimals={false} />
        <Tooltip labelFormatter={(d) => dayLabel(String(d), lang, true)} formatter={(v) => money(Number(v))} />
        <Legend />
        <Bar dataKey="grant_spent_micro" name={t('charts.grant_spent')} stackId="p" fill={SERIES[0]} />
        <Bar dataKey="cofunded_micro" name={t('charts.cofunded')} stackId="p" fill={SERIES[1]} />
      </BarChart>
    </ChartSection>
  );
}
