import { useEffect, useRef, useState, type FormEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { Link } from 'react-router-dom';
import { Bar, BarChart, CartesianGrid, Legend, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';
import { billing, identity, marketplace, testbed } from '../api/endpoints';
import { isApiError } from '../api/problem';
import { formatMicro, parseCredits, sumMicro } from '../api/money';
import type { AuditEntry, BillingAuditEntry, MarketplaceAuditEntry, Page, ReviewDecision, ReviewItem, TestbedAuditEntry } from '../api/types';
import { AsyncBlock, DataTable, Notice, PagedBlock, PageHeader, ProblemAlert, SelectField, TextAreaField, TextField } from '../components/ui';
import { diffLines } from '../lib/diff';
import { formatDate, formatDateTime, formatDuration } from '../lib/format';
import { useAsync, useDocumentTitle, useInterval, usePaged, useSubmit } from '../lib/hooks';
import i18n from '../i18n';
import { ProgrammeChart, UtilisationChart } from '../components/charts';

export default function Staff({ page }: { page: 'reviews' | 'organizations' | 'grants' | 'spend' | 'audit' }) {
  switch (page) {
    case 'reviews':
      return <Reviews />;
    case 'organizations':
      return <Organizations />;
    case 'grants':
      return <Grants />;
    case 'spend':
      return <Spend />;
    case 'audit':
      return <Audit />;
  }
}

/** diffValue renders a diff side: strings as they are, other JSON values compactly. */
export function diffValue(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'string') return v;
  if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v.join(', ');
  if (Array.isArray(v) && v.every((x) => x && typeof x === 'object' && 'name' in x)) {
    return v.map((x) => ('price_micro' in x ? `${x.name} (${x.kind}, ${formatMicro(x.price_micro, i18n.language)})` : String(x.name))).join('; ');
  }
  if (v && typeof v === 'object' && !Array.isArray(v)) {
    // Licences and kind details: their set members, "name: value".
    return Object.entries(v as Record<string, unknown>)
      .filter(([, x]) => x !== '' && x !== null && x !== 0 && x !== false && !(Array.isArray(x) && x.length === 0))
      .map(([k, x]) => `${k}: ${typeof x === 'object' ? JSON.stringify(x) : String(x)}`)
      .join(', ');
  }
  return typeof v === 'boolean' ? i18n.t(v ? 'common.yes' : 'common.no') : JSON.stringify(v);
}

function isTyping(el: Element | null): boolean {
  return !!el && (el.tagName === 'INPUT' || el.tagName === 'TEXTAREA' || el.tagName === 'SELECT' || (el as HTMLElement).isContentEditable);
}

function Reviews() {
  const { t } = useTranslation();
  useDocumentTitle(t('staff.reviews_title'));
  const list = usePaged((cursor) => marketplace().reviews({ cursor }), []);
  // Live: the queue refreshes itself while the page is open (without clearing what is shown).
  useInterval(() => {
    if (document.visibilityState === 'visible') list.refresh();
  }, 10_000);
  const items = [...list.items].sort((a, b) => (a.submitted_at ?? '').localeCompare(b.submitted_at ?? ''));
  const [selected, setSelected] = useState<string | null>(null);
  const current = items.find((i) => i.version_id === selected) ?? items[0];
  const [shortcutsOn, setShortcutsOnState] = useState(() => readShortcutsOn());
  const setShortcutsOn = (on: boolean) => {
    setShortcutsOnState(on);
    try {
      localStorage.setItem(SHORTCUTS_KEY, on ? 'on' : 'off');
    } catch {
      // private mode: the choice holds for this page only
    }
  };
  return (
    <section className="page">
      <PageHeader title={t('staff.reviews_title')} />
      <div className="shortcuts-bar">
        <p className="muted" id="shortcuts">
          {shortcutsOn ? t('staff.shortcuts') : t('staff.shortcuts_off')}
        </p>
        <label className="check">
          <input type="checkbox" checked={shortcutsOn} onChange={(e) => setShortcutsOn(e.target.checked)} data-testid="shortcuts-toggle" />
          <span>{t('staff.shortcuts_toggle')}</span>
        </label>
      </div>
      <PagedBlock list={list} shown={items} emptyText={t('staff.queue_empty')}>
        <div className="review-layout">
          <ol className="plain-list queue" aria-label={t('staff.queue')}>
            {items.map((r) => (
              <li key={r.version_id}>
                <button
                  type="button"
                  className={`queue__item${current?.version_id === r.version_id ? ' queue__item--current' : ''}`}
                  aria-current={current?.version_id === r.version_id ? 'true' : undefined}
                  onClick={() => setSelected(r.version_id)}
                >
                  <span className="queue__title">{r.title}</span>
                  <span className="muted">
                    {t(`kind.${r.kind}`)} · {r.vendor.name} · v{r.version}
                  </span>
                  <span className="muted">{t('staff.waiting', { age: formatDuration(r.age_seconds) })}</span>
                </button>
              </li>
            ))}
          </ol>
          {current && (
            <ReviewPanel
              key={current.version_id}
              item={current}
              shortcuts={shortcutsOn}
              onDone={() => {
                setSelected(null);
                list.reload();
              }}
            />
          )}
        </div>
      </PagedBlock>
    </section>
  );
}

const SHORTCUTS_KEY = 'tamarack.review_shortcuts';

function readShortcutsOn(): boolean {
  try {
    return localStorage.getItem(SHORTCUTS_KEY) !== 'off';
  } catch {
    return true;
  }
}

/** reviewShortcut maps a key press to a review decision: Alt+Shift with a, r or c (WCAG 2.1.4: a single key,
 * typed by speech input or by accident, must not approve a listing). Read from the physical key, as Alt changes
 * the character on macOS. */
export function reviewShortcut(e: Pick<KeyboardEvent, 'altKey' | 'shiftKey' | 'ctrlKey' | 'metaKey' | 'code'>): ReviewDecision | null {
  if (!e.altKey || !e.shiftKey || e.ctrlKey || e.metaKey) return null;
  return e.code === 'KeyA' ? 'approve' : e.code === 'KeyR' ? 'reject' : e.code === 'KeyC' ? 'request_changes' : null;
}

function ReviewPanel({ item, onDone, shortcuts }: { item: ReviewItem; onDone: () => void; shortcuts: boolean }) {
  const { t } = useTranslation();
  const [decision, setDecision] = useState<ReviewDecision>('approve');
  const [comment, setComment] = useState('');
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const commentRef = useRef<HTMLTextAreaElement>(null);
  const fields = isApiError(error) ? error.fieldErrors() : {};

  const send = async (d: ReviewDecision) => {
    setBusy(true);
    setError(undefined);
    try {
      await marketplace().decide(item.version_id, d, comment);
      onDone();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  useEffect(() => {
    if (!shortcuts) return;
    const onKey = (e: KeyboardEvent) => {
      const d = reviewShortcut(e);
      if (!d || isTyping(document.activeElement)) return;
      e.preventDefault();
      setDecision(d);
      if (d === 'approve') void send('approve');
      else commentRef.current?.focus();
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [item.version_id, comment, shortcuts]);

  const submit = (e: FormEvent) => {
    e.preventDefault();
    void send(decision);
  };
  const card = item.diff?.find((f) => f.field === 'card_markdown');
  const others = (item.diff ?? []).filter((f) => f.field !== 'card_markdown' && (!item.first_review || diffValue(f.to) !== ''));
  return (
    <article className="card review" aria-labelledby="review-h">
      <h2 id="review-h">
        {item.title} <span className="muted">v{item.version}</span>
      </h2>
      <p className="muted">
        {t(`kind.${item.kind}`)} · {item.vendor.name} · {t('staff.submitted_at', { at: formatDateTime(item.submitted_at) })} ·{' '}
        {t('staff.waiting', { age: formatDuration(item.age_seconds) })} ·{' '}
        <Link to={`/listings/${encodeURIComponent(item.listing_id)}`}>{t('staff.open_listing')}</Link>
      </p>
      <h3>{item.first_review ? t('staff.first_version') : t('staff.diff_title')}</h3>
      {others.length > 0 ? (
        <DataTable className="diff-fields" columns={[t('staff.field'), !item.first_review && t('staff.before'), t('staff.after')]}>
          {others.map((f) => (
            <tr key={f.field} className="changed">
              <th scope="row">{t(`staff.field_${f.field}`, { defaultValue: f.field })}</th>
              {!item.first_review && <td className="del-text">{diffValue(f.from)}</td>}
              <td>{diffValue(f.to)}</td>
            </tr>
          ))}
        </DataTable>
      ) : (
        !card && <p className="muted">{t('staff.no_changes')}</p>
      )}
      {card && (
        <pre className="diff" aria-label={t('staff.card_diff')} tabIndex={0}>
          {diffLines(diffValue(card.from), diffValue(card.to)).map((l, i) => (
            <span key={i} className={`diff__line diff__line--${l.op}`}>
              <span className="visually-hidden">{l.op === 'add' ? t('staff.added') : l.op === 'del' ? t('staff.removed') : ''}</span>
              {l.op === 'add' ? '+ ' : l.op === 'del' ? '- ' : '  '}
              {l.text}
              {'\n'}
            </span>
          ))}
        </pre>
      )}
      <form onSubmit={submit}>
        <ProblemAlert error={error} />
        <fieldset className="decision">
          <legend>{t('staff.decision')}</legend>
          {(['approve', 'request_changes', 'reject'] as const).map((d) => (
            <label key={d} className="check">
              <input type="radio" name="decision" value={d} checked={decision === d} onChange={() => setDecision(d)} />
              <span>
                {t(`staff.decision_${d}`)}{' '}
                {shortcuts && (
                  <kbd>
                    Alt+Shift+{d === 'approve' ? 'A' : d === 'reject' ? 'R' : 'C'}
                  </kbd>
                )}
              </span>
            </label>
          ))}
        </fieldset>
        <TextAreaField
          ref={commentRef}
          label={t('staff.comment')}
          hint={decision === 'approve' ? t('staff.comment_optional') : t('staff.comment_required')}
          value={comment}
          onChange={(e) => setComment(e.target.value)}
          error={fields.comment}
          required={decision !== 'approve'}
          rows={3}
        />
        <button type="submit" className="button button--primary" disabled={busy || (decision !== 'approve' && !comment.trim())}>
          {busy ? t('common.working') : t(`staff.send_${decision}`)}
        </button>
      </form>
    </article>
  );
}

function Organizations() {
  const { t } = useTranslation();
  useDocumentTitle(t('staff.orgs_title'));
  const [kind, setKind] = useState('');
  const [verified, setVerified] = useState('false');
  const list = usePaged((cursor) => identity().organizations({ kind, verified, cursor }), [kind, verified]);
  const [error, setError] = useState<unknown>();
  const verify = async (id: string) => {
    setError(undefined);
    try {
      await identity().verifyOrganization(id, true, 'verified in the web UI');
      list.reload();
    } catch (e) {
      setError(e);
    }
  };
  return (
    <section className="page">
      <PageHeader title={t('staff.orgs_title')} />
      <div className="filters-row">
        <SelectField label={t('profile.kind')} value={kind} onChange={(e) => setKind(e.target.value)}>
          <option value="">{t('common.all')}</option>
          {(['sme', 'vendor', 'partner'] as const).map((k) => (
            <option key={k} value={k}>
              {t(`org_kind.${k}`)}
            </option>
          ))}
        </SelectField>
        <SelectField label={t('profile.verified')} value={verified} onChange={(e) => setVerified(e.target.value)}>
          <option value="">{t('common.all')}</option>
          <option value="false">{t('staff.unverified')}</option>
          <option value="true">{t('staff.verified')}</option>
        </SelectField>
      </div>
      <ProblemAlert error={error} />
      <PagedBlock list={list} emptyText={t('staff.no_orgs')}>
        <DataTable columns={[t('profile.organization'), t('profile.kind'), t('staff.created'), t('profile.verified')]}>
          {list.items.map((o) => (
            <tr key={o.id} data-org={o.name}>
              <td>
                {o.name} <span className="muted mono">{o.id}</span>
              </td>
              <td>{t(`org_kind.${o.kind}`)}</td>
              <td>{formatDate(o.created_at)}</td>
              <td>
                {o.verified ? (
                  t('common.yes')
                ) : (
                  <button type="button" className="button button--primary" onClick={() => void verify(o.id)} aria-label={t('staff.verify_named', { name: o.name })}>
                    {t('staff.verify')}
                  </button>
                )}
              </td>
            </tr>
          ))}
        </DataTable>
      </PagedBlock>
    </section>
  );
}

function Grants() {
  const { t } = useTranslation();
  useDocumentTitle(t('staff.grants_title'));
  const list = usePaged((cursor) => billing().grants({ cursor }), []);
  const names = useOrgNames();
  const orgs = useAsync(() => identity().organizations({ verified: 'true', limit: 200 }), []);
  const [form, setForm] = useState({ organization_id: '', amount: '', expires_at: '', cofund_percent: '50', cap: '', note: '' });
  const { error, fields, run } = useSubmit();
  const [done, setDone] = useState(false);
  const set = (k: keyof typeof form) => (e: { target: { value: string } }) => setForm({ ...form, [k]: e.target.value });
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setDone(false);
    const amount = parseCredits(form.amount);
    const cap = form.cap ? parseCredits(form.cap) : 0n;
    await run(
      () => {
        const errs: Record<string, string> = {};
        if (amount === null || amount <= 0n) errs.amount_micro = t('editor.bad_amount');
        if (cap === null || cap < 0n) errs.cap_micro = t('editor.bad_amount');
        return errs;
      },
      async () => {
        await billing().createGrant({
          organization_id: form.organization_id,
          amount_micro: Number(amount),
          cap_micro: Number(cap),
          cofund_percent: Number(form.cofund_percent),
          expires_at: form.expires_at ? new Date(`${form.expires_at}T23:59:59Z`).toISOString() : '',
          note: form.note,
        });
        setDone(true);
        list.reload();
      },
    );
  };
  return (
    <section className="page">
      <PageHeader title={t('staff.grants_title')} />
      <form className="inline-form" onSubmit={(e) => void submit(e)} noValidate>
        <h2>{t('staff.new_grant')}</h2>
        {done && <Notice tone="success">{t('staff.grant_created')}</Notice>}
        <ProblemAlert error={error} />
        <SelectField label={t('profile.organization')} value={form.organization_id} onChange={set('organization_id')} error={fields.organization_id} required>
          <option value="">{t('staff.choose_org')}</option>
          {orgs.data?.items.map((o) => (
            <option key={o.id} value={o.id}>
              {o.name} ({t(`org_kind.${o.kind}`)})
            </option>
          ))}
        </SelectField>
        <TextField label={t('staff.amount')} inputMode="decimal" value={form.amount} onChange={set('amount')} error={fields.amount_micro} hint={t('editor.credits_hint')} required />
        <TextField label={t('staff.expires_at')} type="date" value={form.expires_at} onChange={set('expires_at')} error={fields.expires_at} required />
        <TextField label={t('staff.cofund_percent')} type="number" min={0} max={100} value={form.cofund_percent} onChange={set('cofund_percent')} error={fields.cofund_percent} hint={t('staff.cofund_hint')} />
        <TextField label={t('staff.cap')} inputMode="decimal" value={form.cap} onChange={set('cap')} error={fields.cap_micro} hint={t('staff.cap_hint')} />
        <TextAreaField label={t('staff.note')} value={form.note} onChange={set('note')} error={fields.note} rows={2} />
        <button type="submit" className="button button--primary">
          {t('staff.create_grant')}
        </button>
      </form>
      <h2>{t('staff.grants_list')}</h2>
      <PagedBlock list={list} emptyText={t('staff.no_grants')} retry={false}>
        <DataTable
          columns={[
            t('profile.organization'),
            { label: t('staff.amount'), num: true },
            { label: t('staff.cofunded'), num: true },
            t('staff.cofund_percent'),
            { label: t('staff.cap'), num: true },
            t('staff.expires_at'),
          ]}
        >
          {list.items.map((g) => (
            <tr key={g.id}>
              <td>{names[g.organization_id] ?? g.organization_id}</td>
              <td className="num money">{formatMicro(g.amount_micro, i18n.language)}</td>
              <td className="num money">{formatMicro(g.cofunded_micro, i18n.language)}</td>
              <td>{g.cofund_percent} %</td>
              <td className="num money">{formatMicro(g.cap_micro, i18n.language)}</td>
              <td>{formatDate(g.expires_at)}</td>
            </tr>
          ))}
        </DataTable>
      </PagedBlock>
    </section>
  );
}

function useOrgNames(): Record<string, string> {
  const orgs = useAsync(() => identity().organizations({ limit: 200 }), []);
  const out: Record<string, string> = {};
  for (const o of orgs.data?.items ?? []) out[o.id] = o.name;
  return out;
}

function Spend() {
  const { t } = useTranslation();
  useDocumentTitle(t('staff.spend_title'));
  const spend = useAsync(() => billing().programmeSpend(), []);
  const rows = spend.data?.items ?? [];
  const lng = i18n.language;
  const granted = sumMicro(rows.map((r) => r.granted_micro));
  const spent = sumMicro(rows.map((r) => r.spent_micro));
  const cofunded = sumMicro(rows.map((r) => r.cofunded_micro));
  const credits = (m: number) => Number(m) / 1_000_000;
  const data = rows.map((r) => ({
    name: r.name || r.organization_id,
    [t('staff.spent')]: credits(r.spent_micro),
    [t('staff.cofunded')]: credits(r.cofunded_micro),
    [t('staff.remaining')]: credits(r.remaining_micro),
  }));
  const series = [t('staff.spent'), t('staff.cofunded'), t('staff.remaining')];
  return (
    <section className="page">
      <PageHeader title={t('staff.spend_title')} />
      <ProgrammeChart />
      <UtilisationChart />
      <AsyncBlock loading={spend.loading} error={spend.error} empty={!spend.loading && rows.length === 0} emptyText={t('staff.no_spend')} onRetry={spend.reload}>
        <dl className="stats">
          <div>
            <dt>{t('staff.granted')}</dt>
            <dd className="money">{formatMicro(granted, lng)}</dd>
          </div>
          <div>
            <dt>{t('staff.spent')}</dt>
            <dd className="money">{formatMicro(spent, lng)}</dd>
          </div>
          <div>
            <dt>{t('staff.programme_share')}</dt>
            <dd className="money">{formatMicro(cofunded, lng)}</dd>
          </div>
        </dl>
        <figure className="chart">
          <figcaption>{t('staff.chart_caption')}</figcaption>
          <div className="chart__box">
            <ResponsiveContainer width="100%" height={300}>
              <BarChart data={data}>
                <CartesianGrid strokeDasharray="3 3" />
                <XAxis dataKey="name" />
                <YAxis />
                <Tooltip />
                <Legend />
                {series.map((m, i) => (
                  <Bar key={m} dataKey={m} fill={CHART_COLOURS[i % CHART_COLOURS.length]} />
                ))}
              </BarChart>
            </ResponsiveContainer>
          </div>
        </figure>
        <DataTable
          columns={[
            t('profile.organization'),
            { label: t('staff.granted'), num: true },
            { label: t('staff.spent'), num: true },
            { label: t('staff.cofunded'), num: true },
            { label: t('staff.remaining'), num: true },
            { label: t('staff.total'), num: true },
          ]}
        >
          {rows.map((r) => (
            <tr key={r.organization_id}>
              <td>{r.name || r.organization_id}</td>
              <td className="num money">{formatMicro(r.granted_micro, lng)}</td>
              <td className="num money">{formatMicro(r.spent_micro, lng)}</td>
              <td className="num money">{formatMicro(r.cofunded_micro, lng)}</td>
              <td className="num money">{formatMicro(r.remaining_micro, lng)}</td>
              <td className="num money">{formatMicro(r.total_micro, i18n.language)}</td>
            </tr>
          ))}
        </DataTable>
      </AsyncBlock>
    </section>
  );
}

export const CHART_COLOURS = ['#2f6b3a', '#b5651d', '#3b5b92', '#8a3b8f', '#5e7d1a', '#a33a3a'];

type AuditSource = 'identity' | 'marketplace' | 'testbed' | 'billing';
const AUDIT_SOURCES: AuditSource[] = ['identity', 'marketplace', 'testbed', 'billing'];

/** AuditRow is an audit entry as the table shows it, whichever service wrote it. */
interface AuditRow {
  id: string;
  at: string;
  actor: string;
  action: string;
  action_display: string;
  target: string;
  detail: string;
}

function auditPage<A>(page: Promise<Page<A>>, row: (a: A) => AuditRow): Promise<Page<AuditRow>> {
  return page.then((p) => ({ ...p, items: p.items.map(row) }));
}

/** auditRows fetches a page of source's audit log (the action filter where the service has one). */
export function auditRows(source: AuditSource, cursor: string | undefined, action: string): Promise<Page<AuditRow>> {
  switch (source) {
    case 'marketplace':
      return auditPage(marketplace().audit(cursor), (a: MarketplaceAuditEntry) => ({
        ...a,
        actor: a.actor_user_id,
        target: [a.listing_id, a.target_id].filter(Boolean).join(' '),
        detail: a.detail ?? '',
      }));
    case 'testbed':
      return auditPage(testbed().audit(cursor), (a: TestbedAuditEntry) => ({ ...a, actor: a.actor_user_id }));
    case 'billing':
      return auditPage(billing().audit({ cursor, action: action || undefined }), (a: BillingAuditEntry) => ({ ...a, actor: a.actor_user_id }));
    default:
      return auditPage(identity().audit({ cursor, action: action || undefined }), (a: AuditEntry) => ({
        ...a,
        actor: a.actor_email ?? a.actor_id ?? '',
        target: [a.target_type, a.target_id].filter(Boolean).join(' '),
        detail: a.detail ? JSON.stringify(a.detail) : '',
      }));
  }
}

function Audit() {
  const { t } = useTranslation();
  useDocumentTitle(t('staff.audit_title'));
  const [action, setAction] = useState('');
  const [applied, setApplied] = useState('');
  const [source, setSource] = useState<AuditSource>('identity');
  const filtered = source === 'identity' || source === 'billing';
  const list = usePaged((cursor) => auditRows(source, cursor, filtered ? applied : ''), [applied, source]);
  return (
    <section className="page">
      <PageHeader title={t('staff.audit_title')} />
      <form
        className="filters-row"
        onSubmit={(e) => {
          e.preventDefault();
          setApplied(action.trim());
        }}
      >
        <SelectField label={t('staff.audit_source')} value={source} onChange={(e) => setSource(e.target.value as AuditSource)}>
          {AUDIT_SOURCES.map((x) => (
            <option key={x} value={x}>
              {t(`staff.source_${x}`)}
            </option>
          ))}
        </SelectField>
        {filtered && <TextField label={t('staff.action_filter')} value={action} onChange={(e) => setAction(e.target.value)} />}
        <button type="submit" className="button">
          {t('common.apply')}
        </button>
      </form>
      <PagedBlock list={list} emptyText={t('staff.no_audit')}>
        <DataTable columns={[t('staff.when'), t('staff.actor'), t('staff.action'), t('staff.target'), t('staff.detail')]}>
          {list.items.map((a) => (
            <tr key={a.id}>
              <td>{formatDateTime(a.at)}</td>
              <td>{a.actor || '—'}</td>
              <td>
                {a.action_display || a.action} <span className="mono small">{a.action}</span>
              </td>
              <td className="mono">{a.target}</td>
              <td className="mono small">{a.detail}</td>
            </tr>
          ))}
        </DataTable>
      </PagedBlock>
    </section>
  );
}

