import { useState, type FormEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { Link, useSearchParams } from 'react-router-dom';
import { Bar, BarChart, CartesianGrid, Legend, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';
import { billing } from '../api/endpoints';
import { isApiError } from '../api/problem';
import { formatMicro, parseCredits, sumMicro } from '../api/money';
import type { UsageRow } from '../api/types';
import { useSession } from '../auth/session';
import { AsyncBlock, DataTable, Notice, PagedBlock, PageHeader, ProblemAlert, StateBadge, TextField } from '../components/ui';
import { formatDate, formatDateTime, formatNumber } from '../lib/format';
import { useAsync, useDocumentTitle, useInterval, usePaged } from '../lib/hooks';
import i18n from '../i18n';

const COLOURS = ['#2f6b3a', '#b5651d', '#3b5b92', '#8a3b8f', '#5e7d1a', '#a33a3a'];

/** gpuHoursByDay pivots usage rows into one chart row per day with GPU-hours per model (hours are not money). */
export function gpuHoursByDay(rows: UsageRow[]) {
  const models = [...new Set(rows.map((r) => r.gpu_model))].sort();
  const byDay = new Map<string, Record<string, number | string>>();
  for (const r of rows) {
    const row = byDay.get(r.day) ?? { day: r.day };
    row[r.gpu_model] = Math.round((((row[r.gpu_model] as number) ?? 0) + r.millis / 3_600_000) * 1000) / 1000;
    byDay.set(r.day, row);
  }
  return { models, data: [...byDay.values()].sort((a, b) => String(a.day).localeCompare(String(b.day))) };
}

/** chargeByModel sums charges per GPU model in micro-credits with BigInt. */
export function chargeByModel(rows: UsageRow[]): { gpu_model: string; micro: bigint; seconds: number }[] {
  const m = new Map<string, { micro: bigint; seconds: number }>();
  for (const r of rows) {
    const cur = m.get(r.gpu_model) ?? { micro: 0n, seconds: 0 };
    cur.micro += sumMicro([r.charge_micro]);
    cur.seconds += r.millis / 1000;
    m.set(r.gpu_model, cur);
  }
  return [...m.entries()].map(([gpu_model, v]) => ({ gpu_model, ...v })).sort((a, b) => a.gpu_model.localeCompare(b.gpu_model));
}

export default function Wallet({ page }: { page: 'wallet' | 'return' }) {
  return page === 'return' ? <CheckoutReturn /> : <WalletPage />;
}

function Balances() {
  const { t } = useTranslation();
  const w = useAsync(() => billing().wallet(), []);
  // Balances change as sandboxes run and payments land: refresh while the page is visible.
  useInterval(() => {
    if (document.visibilityState === 'visible') billing().wallet().then(w.setData, () => undefined);
  }, 10_000);
  return (
    <AsyncBlock loading={w.loading && !w.data} error={w.error} onRetry={w.reload}>
      {w.data && (
        <>
          <dl className="stats">
            <div className="stat--main">
              <dt>{t('wallet.available')}</dt>
              <dd className="money" data-testid="available">{w.data.available_display}</dd>
            </div>
            <div>
              <dt>{t('wallet.purchased')}</dt>
              <dd className="money" data-testid="purchased">{w.data.purchased_display}</dd>
            </div>
            <div>
              <dt>{t('wallet.granted')}</dt>
              <dd className="money">{w.data.granted_display}</dd>
            </div>
            <div>
              <dt>{t('wallet.held')}</dt>
              <dd className="money">{w.data.held_display}</dd>
            </div>
          </dl>
          {w.data.grants?.length > 0 && (
            <DataTable caption={t('wallet.grants')}
              columns={[
                t('staff.note'),
                { label: t('staff.amount'), num: true },
                { label: t('staff.remaining'), num: true },
                t('staff.cofund_percent'),
                t('staff.expires_at'),
              ]}
            >
              {w.data.grants.map((g) => (
                <tr key={g.grant_id}>
                  <td>{g.note || g.grant_id}</td>
                  <td className="num money">{formatMicro(g.amount_micro, i18n.language)}</td>
                  <td className="num money">{g.balance_display}</td>
                  <td>{g.cofund_percent ? `${g.cofund_percent} %` : '—'}</td>
                  <td>{formatDate(g.expires_at)}</td>
                </tr>
              ))}
            </DataTable>
          )}
        </>
      )}
    </AsyncBlock>
  );
}

function WalletPage() {
  const { t } = useTranslation();
  useDocumentTitle(t('wallet.title'));
  const s = useSession();
  return (
    <section className="page">
      <PageHeader title={t('wallet.title')} />
      <Balances />
      {s.isOrgAdmin && <BuyCredits />}
      {s.isOrgAdmin && <Budget />}
      <Usage />
      {s.isOrgAdmin && <Statement />}
      <Transactions />
    </section>
  );
}

function BuyCredits() {
  const { t } = useTranslation();
  const [credits, setCredits] = useState('100');
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const fields = isApiError(error) ? error.fieldErrors() : {};
  const buy = async (e: FormEvent) => {
    e.preventDefault();
    setError(undefined);
    setBusy(true);
    try {
      const c = await billing().checkout(Number.parseInt(credits, 10));
      window.location.assign(c.checkout_url);
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  return (
    <form className="inline-form" onSubmit={(e) => void buy(e)}>
      <h2>{t('wallet.buy')}</h2>
      <ProblemAlert error={error} />
      <TextField label={t('wallet.credits')} type="number" min={1} step={1} value={credits} onChange={(e) => setCredits(e.target.value)} error={fields.credits} hint={t('wallet.buy_hint')} />
      <button type="submit" className="button button--primary" disabled={busy}>
        {busy ? t('common.working') : t('wallet.checkout')}
      </button>
    </form>
  );
}

function Budget() {
  const { t } = useTranslation();
  const w = useAsync(() => billing().wallet(), []);
  const [value, setValue] = useState<string | null>(null);
  const [error, setError] = useState<unknown>();
  const [local, setLocal] = useState<string | undefined>();
  const [saved, setSaved] = useState(false);
  const fields = isApiError(error) ? error.fieldErrors() : {};
  const current = w.data?.monthly_budget_micro ?? 0;
  const shown = value ?? (current ? formatMicro(current, 'en').replace(/,/g, '') : '');
  const save = async (e: FormEvent) => {
    e.preventDefault();
    setError(undefined);
    setSaved(false);
    const micro = shown.trim() === '' ? 0n : parseCredits(shown);
    if (micro === null || micro < 0n) {
      setLocal(t('editor.bad_amount'));
      return;
    }
    setLocal(undefined);
    try {
      w.setData(await billing().setBudget(Number(micro)));
      setValue(null);
      setSaved(true);
    } catch (err) {
      setError(err);
    }
  };
  return (
    <form className="inline-form" onSubmit={(e) => void save(e)} noValidate>
      <h2>{t('wallet.budget')}</h2>
      {w.data && (
        <p className="muted">
          {current
            ? t('wallet.budget_used', { spent: formatMicro(w.data.month_spent_micro ?? 0, i18n.language), budget: formatMicro(current, i18n.language) })
            : t('wallet.budget_none', { spent: formatMicro(w.data.month_spent_micro ?? 0, i18n.language) })}
        </p>
      )}
      {saved && <Notice tone="success">{t('editor.saved')}</Notice>}
      <ProblemAlert error={error ?? w.error} />
      <TextField
        label={t('wallet.budget_label')}
        inputMode="decimal"
        value={shown}
        onChange={(e) => setValue(e.target.value)}
        error={local ?? fields.monthly_budget_micro}
        hint={t('wallet.budget_hint')}
      />
      <button type="submit" className="button">
        {t('common.save')}
      </button>
    </form>
  );
}

function Usage() {
  const { t } = useTranslation();
  const to = new Date();
  const from = new Date(to.getTime() - 30 * 24 * 3600_000);
  const usage = useAsync(() => billing().usage({ from: from.toISOString().slice(0, 10), to: to.toISOString().slice(0, 10) }), []);
  const rows = usage.data?.items ?? [];
  const { data, models } = gpuHoursByDay(rows);
  const perModel = chargeByModel(rows);
  return (
    <section aria-labelledby="usage-h">
      <h2 id="usage-h">{t('wallet.usage')}</h2>
      <AsyncBlock loading={usage.loading} error={usage.error} empty={!usage.loading && rows.length === 0} emptyText={t('wallet.no_usage')}>
        <figure className="chart">
          <figcaption>
            {t('wallet.usage_caption')} ({t('wallet.usage_days_utc')})
          </figcaption>
          <div className="chart__box">
            <ResponsiveContainer width="100%" height={260}>
              <BarChart data={data}>
                <CartesianGrid strokeDasharray="3 3" />
                <XAxis dataKey="day" />
                <YAxis />
                <Tooltip />
                <Legend />
                {models.map((m, i) => (
                  <Bar key={m} dataKey={m} stackId="gpu" fill={COLOURS[i % COLOURS.length]} />
                ))}
              </BarChart>
            </ResponsiveContainer>
          </div>
        </figure>
        <DataTable caption={t('wallet.by_model')}
          columns={[
            t('listing.gpu_model'),
            { label: t('staff.gpu_hours'), num: true },
            { label: t('wallet.charged'), num: true },
          ]}
        >
          {perModel.map((r) => (
            <tr key={r.gpu_model}>
              <td>{r.gpu_model}</td>
              <td className="num">{formatNumber(r.seconds / 3600, 2)}</td>
              <td className="num money">{formatMicro(r.micro, i18n.language)}</td>
            </tr>
          ))}
        </DataTable>
      </AsyncBlock>
    </section>
  );
}

function Statement() {
  const { t } = useTranslation();
  const now = new Date();
  const [month, setMonth] = useState(`${now.getFullYear()}-${String(now.getMonth() + 1).padStart(2, '0')}`);
  const [error, setError] = useState<unknown>();
  const download = async (e: FormEvent) => {
    e.preventDefault();
    setError(undefined);
    try {
      const res = await billing().statementCsv(month);
      const blob = await res.blob();
      const url = URL.createObjectURL(blob);
      const a = document.createElement('a');
      a.href = url;
      a.download = `tamarack-statement-${month}.csv`;
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
    } catch (err) {
      setError(err);
    }
  };
  return (
    <form className="inline-form" onSubmit={(e) => void download(e)}>
      <h2>{t('wallet.statement')}</h2>
      <ProblemAlert error={error} />
      <TextField label={t('wallet.month')} type="month" value={month} onChange={(e) => setMonth(e.target.value)} required />
      <button type="submit" className="button">
        {t('wallet.download_csv')}
      </button>
    </form>
  );
}

function Transactions() {
  const { t } = useTranslation();
  const list = usePaged((cursor) => billing().transactions(cursor), []);
  useInterval(() => {
    if (document.visibilityState === 'visible') list.refresh();
  }, 15_000);
  return (
    <section aria-labelledby="tx-h">
      <h2 id="tx-h">{t('wallet.transactions')}</h2>
      <PagedBlock list={list} emptyText={t('wallet.no_transactions')}>
        <DataTable className="transactions"
          columns={[
            t('staff.when'),
            t('wallet.kind'),
            t('wallet.account'),
            t('wallet.reference'),
            { label: t('wallet.amount'), num: true },
            t('vendor.state'),
          ]}
        >
          {list.items.map((x, i) => (
            <tr key={`${x.transfer_id}-${x.account}-${i}`} data-kind={x.kind}>
              <td>{formatDateTime(x.at)}</td>
              <td>{t(`tx_kind.${x.kind}`, { defaultValue: x.kind })}</td>
              <td className="mono small">{x.account}</td>
              <td className="mono small">{x.ref ?? ''}</td>
              <td className="num money">{x.amount_display}</td>
              <td>{x.phase ? <StateBadge state={x.phase} /> : null}</td>
            </tr>
          ))}
        </DataTable>
      </PagedBlock>
    </section>
  );
}

/** CheckoutReturn is where Stripe sends the browser back. The webhook, not this page, credits the wallet. */
function CheckoutReturn() {
  const { t } = useTranslation();
  useDocumentTitle(t('wallet.return_title'));
  const [params] = useSearchParams();
  const cancelled = params.get('cancelled') === '1' || params.get('status') === 'cancelled';
  const [polls, setPolls] = useState(0);
  const [tick, setTick] = useState(0);
  useInterval(() => {
    setPolls((p) => p + 1);
    setTick((x) => x + 1);
  }, cancelled || polls >= 10 ? null : 3000);
  const w = useAsync(() => billing().wallet(), [tick]);
  return (
    <section className="page narrow">
      <h1>{t('wallet.return_title')}</h1>
      {cancelled ? <Notice tone="warning">{t('wallet.cancelled')}</Notice> : <Notice>{t('wallet.return_body')}</Notice>}
      {w.data && (
        <p>
          {t('wallet.available')}: <strong className="money" data-testid="available">{w.data.available_display}</strong>{' '}
          <span className="muted">({t('wallet.updated', { at: formatDateTime(new Date().toISOString()) })})</span>
        </p>
      )}
      {w.error ? <ProblemAlert error={w.error} /> : null}
      <p>
        <Link to="/wallet">{t('wallet.back')}</Link>
      </p>
    </section>
  );
}
