import { Fragment, useState, type FormEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { Link, useSearchParams } from 'react-router-dom';
import { Bar, BarChart, CartesianGrid, Legend, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';
import { billing } from '../api/endpoints';
import { isApiError } from '../api/problem';
import { formatCredits, formatCurrency, formatMoney, microToDecimal, parseCredits, sumMicro, type CreditValue } from '../api/money';
import { useCreditValue, useMoneySettings } from '../api/moneySettings';
import type { ActivityKind, ActivityLine, ActivityQuery, UsageRow } from '../api/types';
import { useSession } from '../auth/session';
import { AsyncBlock, DataTable, Notice, PagedBlock, PageHeader, ProblemAlert, SelectField, TextField } from '../components/ui';
import { formatDate, formatDateTime, formatDuration, formatNumber } from '../lib/format';
import { useAsync, useDocumentTitle, useInterval, usePaged } from '../lib/hooks';
import i18n from '../i18n';
import { MonthlyStatements, Receipts, SpendCharts } from '../components/charts';

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
  const cv = useCreditValue();
  const lang = i18n.language;
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
              <dd className="money" data-testid="available-money"><Money micro={w.data.available_micro} cv={cv} testId="available" /></dd>
            </div>
            <div>
              <dt>{t('wallet.purchased')}</dt>
              <dd className="money"><Money micro={w.data.purchased_micro} cv={cv} testId="purchased" /></dd>
            </div>
            <div>
              <dt>{t('wallet.granted')}</dt>
              <dd className="money"><Money micro={w.data.granted_micro} cv={cv} /></dd>
            </div>
            <div>
              <dt>{t('wallet.held')}</dt>
              <dd className="money"><Money micro={w.data.held_micro} cv={cv} /></dd>
            </div>
          </dl>
          {cv && <p className="muted credit-value" data-testid="credit-value">{t('money.credit_value', { value: formatCurrency1(lang, cv) })}</p>}
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
                  <td className="num money">{formatCredits(g.amount_micro, lang)}</td>
                  <td className="num money">{formatCredits(g.balance_micro, lang)}</td>
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
      <GetCredits admin={s.isOrgAdmin} />
      {s.isOrgAdmin && <Budget />}
      <Usage />
      {s.activeOrg && <SpendCharts orgId={s.activeOrg.id} />}
      {s.isOrgAdmin && <Statement />}
      {s.activeOrg && <MonthlyStatements orgId={s.activeOrg.id} />}
      {s.activeOrg && <Receipts orgId={s.activeOrg.id} />}
      <Transactions org={s.activeOrg?.id ?? ''} />
    </section>
  );
}

/**
 * GetCredits is the purchase form when card payments are on (org admins), else how to get credits: a programme
 * grant or an offline purchase order, through programme staff.
 */
function GetCredits({ admin }: { admin: boolean }) {
  const { t } = useTranslation();
  const settings = useMoneySettings();
  if (!settings) return null;
  if (settings.card_payments) return admin ? <BuyCredits creditValue={settings.credit_value} /> : null;
  return (
    <section aria-labelledby="get-credits-h" className="get-credits" data-testid="get-credits">
      <h2 id="get-credits-h">{t('money.get_credits')}</h2>
      <Notice>{t('money.cards_off')}</Notice>
      <ul>
        <li>{t('money.ask_grant')}</li>
        <li>{t('money.ask_po')}</li>
      </ul>
    </section>
  );
}

function BuyCredits({ creditValue }: { creditValue: CreditValue }) {
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
      {/^\d{1,7}$/.test(credits) && (
        <p className="muted" data-testid="buy-total">
          {t('money.buy_total', { total: formatMoney(BigInt(credits) * 1_000_000n, i18n.language, creditValue) })}
        </p>
      )}
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
  const shown = value ?? (current ? microToDecimal(current) : '');
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
            ? t('wallet.budget_used', { spent: formatCredits(w.data.month_spent_micro ?? 0, i18n.language, { unit: false }), budget: formatCredits(current, i18n.language, { unit: false }) })
            : t('wallet.budget_none', { spent: formatCredits(w.data.month_spent_micro ?? 0, i18n.language, { unit: false }) })}
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
              <td className="num money">{formatCredits(r.micro, i18n.language, { unit: false })}</td>
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

/**
 * Money shows credits, then their value in the programme's currency: "500.00 credits ($500.00)". The credits are
 * their own element (testId) so that scripts read the credit amount alone.
 */
function Money({ micro, cv, testId }: { micro: number; cv?: CreditValue; testId?: string }) {
  const lang = i18n.language;
  return (
    <>
      <span data-testid={testId}>{formatCredits(micro, lang)}</span>
      {cv && <span className="money__value"> ({formatCurrency(micro, lang, cv)})</span>}
    </>
  );
}

/** formatCurrency1 is the value of one credit, e.g. "$1.00" / "1,00 $". */
function formatCurrency1(lang: string, cv: CreditValue): string {
  return formatCurrency(1_000_000, lang, cv, { rate: true });
}

const ACTIVITY_KINDS: ActivityKind[] = ['usage', 'purchase', 'grant', 'grant_expiry', 'refund', 'order', 'payout', 'earning'];

/** formatDurationMs renders a usage line's wall time as "1 h 05 min" (time, not money). */
function durationOf(ms?: number): string {
  return ms ? formatDuration(Math.round(ms / 1000)) : '—';
}

/** filenameOf reads the file name from a Content-Disposition header. */
function filenameOf(res: Response, fallback: string): string {
  const m = /filename="?([^";]+)"?/.exec(res.headers.get('Content-Disposition') ?? '');
  return m?.[1] ?? fallback;
}

/**
 * Transactions is the organisation's readable activity: usage per sandbox per UTC day, purchases, grants, refunds,
 * orders and payouts; filters, newest or oldest first, a detail view per line and a CSV download of the filtered lines.
 */
function Transactions({ org }: { org: string }) {
  const { t } = useTranslation();
  const lang = i18n.language;
  const cv = useCreditValue();
  const [q, setQ] = useState<ActivityQuery>({ sort: '-date' });
  const [open, setOpen] = useState<string | null>(null);
  const [csvError, setCsvError] = useState<unknown>();
  const list = usePaged((cursor) => billing().activity(org, { ...q, cursor }), [org, q.kind, q.from, q.to, q.sandbox_id, q.listing_id, q.sort]);
  // Usage is metered into the ledger asynchronously: refresh the first page while the page is visible.
  useInterval(() => {
    if (document.visibilityState === 'visible' && !open) list.refresh();
  }, 15_000);
  const filtered = !!(q.kind || q.from || q.to || q.sandbox_id || q.listing_id);
  const set = (k: keyof ActivityQuery, v: string) => setQ((old) => ({ ...old, [k]: v || undefined }));
  const download = async () => {
    setCsvError(undefined);
    try {
      const res = await billing().activityCsv(org, q);
      const url = URL.createObjectURL(await res.blob());
      const a = document.createElement('a');
      a.href = url;
      a.download = filenameOf(res, 'transactions.csv');
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
    } catch (err) {
      setCsvError(err);
    }
  };
  return (
    <section aria-labelledby="tx-h" className="activity">
      <h2 id="tx-h">{t('wallet.transactions')}</h2>
      <p className="muted">{t('money.day_rule')}</p>
      <form className="activity__filters" onSubmit={(e) => e.preventDefault()} aria-label={t('money.filters')}>
        <SelectField label={t('wallet.kind')} value={q.kind ?? ''} onChange={(e) => set('kind', e.target.value)}>
          <option value="">{t('money.all_kinds')}</option>
          {ACTIVITY_KINDS.map((k) => (
            <option key={k} value={k}>
              {t(`money.kind_${k}`)}
            </option>
          ))}
        </SelectField>
        <TextField label={t('money.from')} type="date" value={q.from ?? ''} onChange={(e) => set('from', e.target.value)} />
        <TextField label={t('money.to')} type="date" value={q.to ?? ''} onChange={(e) => set('to', e.target.value)} />
        <TextField label={t('money.sandbox')} value={q.sandbox_id ?? ''} onChange={(e) => set('sandbox_id', e.target.value.trim())} />
        <TextField label={t('money.listing')} value={q.listing_id ?? ''} onChange={(e) => set('listing_id', e.target.value.trim())} />
        <SelectField label={t('money.sort')} value={q.sort ?? '-date'} onChange={(e) => set('sort', e.target.value)}>
          <option value="-date">{t('money.newest')}</option>
          <option value="date">{t('money.oldest')}</option>
        </SelectField>
        <div className="activity__actions">
          {filtered && (
            <button type="button" className="button" onClick={() => setQ({ sort: q.sort })}>
              {t('catalogue.clear')}
            </button>
          )}
          <button type="button" className="button" onClick={() => void download()} data-testid="csv">
            {t('money.download_csv')}
          </button>
        </div>
      </form>
      <ProblemAlert error={csvError} />
      <PagedBlock list={list} emptyText={filtered ? t('money.empty_filtered') : t('money.empty')}>
        <DataTable className="transactions"
          caption={t('money.caption')}
          captionHidden
          columns={[
            t('money.date'),
            t('money.what'),
            t('money.duration'),
            { label: t('money.rate'), num: true },
            { label: t('money.gross'), num: true },
            { label: t('money.cofunded'), num: true },
            { label: t('wallet.amount'), num: true },
            { label: t('money.details'), hidden: true },
          ]}
        >
          {list.items.map((x) => (
            <Fragment key={x.id}>
              <tr data-kind={x.kind} data-line={x.id}>
                <td>{formatDate(`${x.date}T12:00:00Z`)}</td>
                <td><LineWhat line={x} /></td>
                <td>{x.kind === 'usage' ? durationOf(x.duration_ms) : ''}</td>
                <td className="num money">{x.rate_micro ? t('money.per_gpu_hour', { rate: formatCredits(x.rate_micro, lang, { rate: true, unit: false }) }) : ''}</td>
                <td className="num money">{x.kind === 'usage' ? formatCredits(x.gross_micro ?? 0, lang, { unit: false }) : ''}</td>
                <td className="num money">{x.cofunded_micro ? formatCredits(-(x.cofunded_micro), lang, { unit: false }) : ''}</td>
                <td className={`num money ${x.amount_micro < 0 ? 'money--debit' : 'money--credit'}`} data-testid="amount">
                  {formatMoney(x.amount_micro, lang, cv)}
                </td>
                <td>
                  <button type="button" className="button button--small" aria-expanded={open === x.id} aria-controls={`entries-${x.id}`}
                    onClick={() => setOpen(open === x.id ? null : x.id)}>
                    {open === x.id ? t('money.hide_entries') : t('money.show_entries', { count: x.entries })}
                  </button>
                </td>
              </tr>
              {open === x.id && (
                <tr className="activity__detail" id={`entries-${x.id}`}>
                  <td colSpan={8}>
                    <Entries org={org} line={x} />
                  </td>
                </tr>
              )}
            </Fragment>
          ))}
        </DataTable>
      </PagedBlock>
    </section>
  );
}

/** LineWhat describes a line: usage names the listing, the sandbox (linked) and the GPUs; others their kind and reference. */
function LineWhat({ line: x }: { line: ActivityLine }) {
  const { t } = useTranslation();
  if (x.kind !== 'usage') {
    return (
      <>
        {t(`money.kind_${x.kind}`)}
        {x.ref ? <span className="mono small muted"> · {x.ref}</span> : null}
      </>
    );
  }
  return (
    <>
      {x.listing_id ? <Link to={`/listings/${encodeURIComponent(x.listing_id)}`}>{x.listing_title || x.listing_id}</Link> : t('money.kind_usage')}
      <br />
      <span className="small">
        {t('money.sandbox')} <Link className="mono" to={`/sandboxes/${encodeURIComponent(x.sandbox_id ?? '')}`}>{x.sandbox_id}</Link>
        {' · '}
        {t('money.gpus', { count: x.gpu_count ?? 0, model: x.gpu_model ?? '' })}
      </span>
    </>
  );
}

/** Entries is the audit view of one line: its metered samples or ledger entries. */
function Entries({ org, line }: { org: string; line: ActivityLine }) {
  const { t } = useTranslation();
  const lang = i18n.language;
  const list = usePaged((cursor) => billing().activityEntries(org, line.id, cursor), [org, line.id]);
  return (
    <PagedBlock list={list} emptyText={t('money.no_entries')}>
      <DataTable className="entries" caption={t('money.entries_of', { count: line.entries })}
        columns={[
          t('staff.when'),
          t('money.entry'),
          line.kind === 'usage' ? t('money.duration') : t('wallet.account'),
          { label: line.kind === 'usage' ? t('money.gross') : t('money.counterparty'), num: line.kind === 'usage' },
          { label: t('wallet.amount'), num: true },
        ]}
      >
        {list.items.map((e, i) => (
          <tr key={`${e.id}-${e.account ?? ''}-${i}`}>
            <td>{formatDateTime(e.at)}</td>
            <td className="mono small">{e.seq ? `#${e.seq} ${e.id}` : e.id}</td>
            <td className={line.kind === 'usage' ? undefined : 'mono small'}>{line.kind === 'usage' ? durationOf(e.duration_ms) : e.account}</td>
            <td className={line.kind === 'usage' ? 'num money' : 'mono small'}>
              {line.kind === 'usage' ? formatCredits(e.gross_micro ?? 0, lang, { rate: true, unit: false }) : e.counterparty}
            </td>
            <td className="num money">{formatCredits(e.amount_micro, lang, { rate: true, unit: false })}</td>
          </tr>
        ))}
      </DataTable>
    </PagedBlock>
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
  const cv = useCreditValue();
  return (
    <section className="page narrow">
      <h1>{t('wallet.return_title')}</h1>
      {cancelled ? <Notice tone="warning">{t('wallet.cancelled')}</Notice> : <Notice>{t('wallet.return_body')}</Notice>}
      {w.data && (
        <p>
          {t('wallet.available')}: <strong className="money"><Money micro={w.data.available_micro} cv={cv} testId="available" /></strong>{' '}
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
