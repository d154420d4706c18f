// Staff's billing screens: offline payments (bank transfer, cheque) credited to an organisation's wallet, and
// vendor payouts with the vendors' Stripe Connect accounts.

import { useState, type FormEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { billing, identity } from '../api/endpoints';
import { formatMicro, parseCredits } from '../api/money';
import type { Organization, Payout } from '../api/types';
import { ConfirmDialog } from '../components/ConfirmDialog';
import { AsyncBlock, DataTable, Notice, PageHeader, ProblemAlert, SelectField, TextField } from '../components/ui';
import { useAsync, useDocumentTitle, useSubmit } from '../lib/hooks';
import i18n from '../i18n';

export default function StaffBilling({ page }: { page: 'payments' | 'payouts' }) {
  return page === 'payments' ? <OfflinePayments /> : <Payouts />;
}

/** useOrgs reads the organisations staff choose from (up to 200, by name). */
function useOrgs(kind?: string) {
  const orgs = useAsync(() => identity().organizations({ kind, limit: 200 }), [kind]);
  const items = [...(orgs.data?.items ?? [])].sort((a, b) => a.name.localeCompare(b.name));
  return { ...orgs, items };
}

/** OrgSelect is a labelled organisation chooser with its loading and empty states in the placeholder option. */
function OrgSelect({
  label,
  orgs,
  value,
  onChange,
  error,
  showKind,
  allLabel,
  chooseLabel,
}: {
  label: string;
  orgs: ReturnType<typeof useOrgs>;
  value: string;
  onChange: (id: string) => void;
  error?: string;
  showKind?: boolean;
  allLabel?: string;
  chooseLabel?: string;
}) {
  const { t } = useTranslation();
  const placeholder = orgs.loading ? t('common.loading') : orgs.items.length === 0 ? t('payments.no_orgs') : (allLabel ?? chooseLabel ?? t('payments.choose_org'));
  return (
    <SelectField label={label} value={value} onChange={(e) => onChange(e.target.value)} error={error} required={!allLabel} aria-busy={orgs.loading}>
      <option value="">{placeholder}</option>
      {orgs.items.map((o: Organization) => (
        <option key={o.id} value={o.id}>
          {o.name}
          {showKind ? ` (${t(`org_kind.${o.kind}`)}${o.verified ? '' : `, ${t('staff.unverified').toLowerCase()}`})` : ''}
        </option>
      ))}
    </SelectField>
  );
}

function OfflinePayments() {
  const { t } = useTranslation();
  useDocumentTitle(t('payments.offline_title'));
  const orgs = useOrgs();
  const [form, setForm] = useState({ organization_id: '', credits: '', reference: '' });
  const { error, fields, busy, run } = useSubmit();
  const [done, setDone] = useState<{ credits: number; name: string; id: string } | null>(null);
  const set = (k: keyof typeof form) => (v: string) => setForm({ ...form, [k]: v });
  const credits = /^\d+$/.test(form.credits.trim()) ? Number(form.credits.trim()) : NaN;

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setDone(null);
    await run(
      () => {
        const errs: Record<string, string> = {};
        if (!form.organization_id) errs.organization_id = t('payments.org_required');
        if (!(credits >= 1 && credits <= 10_000_000)) errs.credits = t('payments.bad_credits');
        if (!form.reference.trim()) errs.reference = t('payments.reference_required');
        return errs;
      },
      async () => {
        const p = await billing().offlinePayment({ organization_id: form.organization_id, credits, reference: form.reference.trim() });
        setDone({ credits: p.credits, name: orgs.items.find((o) => o.id === p.organization_id)?.name ?? p.organization_id, id: p.id });
        setForm({ organization_id: '', credits: '', reference: '' });
      },
    );
  };

  return (
    <section className="page">
      <PageHeader title={t('payments.offline_title')} />
      <p className="muted">{t('payments.offline_lead')}</p>
      <ProblemAlert error={orgs.error} />
      <form className="inline-form" onSubmit={(e) => void submit(e)} noValidate>
        {done && (
          <Notice tone="success">
            {t('payments.recorded', { credits: done.credits, name: done.name })} <span className="mono small">{done.id}</span>
          </Notice>
        )}
        <ProblemAlert error={error} listFields={(f) => !['organization_id', 'credits', 'reference'].includes(f)} />
        <OrgSelect label={t('profile.organization')} orgs={orgs} value={form.organization_id} onChange={set('organization_id')} error={fields.organization_id} showKind />
        <TextField label={t('payments.credits')} inputMode="numeric" value={form.credits} onChange={(e) => set('credits')(e.target.value)} error={fields.credits} hint={t('payments.credits_hint')} required />
        <TextField label={t('payments.reference')} value={form.reference} onChange={(e) => set('reference')(e.target.value)} error={fields.reference} hint={t('payments.reference_hint')} maxLength={200} required />
        <button type="submit" className="button button--primary" disabled={busy} aria-busy={busy}>
          {busy ? t('common.working') : t('payments.record')}
        </button>
      </form>
    </section>
  );
}

function Payouts() {
  const { t } = useTranslation();
  useDocumentTitle(t('payments.payouts_title'));
  const vendors = useOrgs('vendor');
  const [filter, setFilter] = useState('');
  const list = useAsync(() => billing().payouts({ vendor_org_id: filter || undefined }), [filter]);
  const rows = list.data?.items ?? [];
  const lng = i18n.language;
  return (
    <section className="page">
      <PageHeader title={t('payments.payouts_title')} />
      <ProblemAlert error={vendors.error} />
      <div className="filters-row">
        <OrgSelect label={t('payments.vendor')} orgs={vendors} value={filter} onChange={setFilter} allLabel={t('payments.all_vendors')} />
      </div>
      <AsyncBlock loading={list.loading} error={list.error} empty={!list.loading && rows.length === 0} emptyText={t('payments.no_payables')} onRetry={list.reload}>
        <DataTable
          label={t('payments.payables')}
          columns={[
            t('payments.vendor'),
            { label: t('vendor.earned'), num: true },
            { label: t('vendor.paid_out'), num: true },
            { label: t('vendor.payable'), num: true },
            t('payments.connect_account'),
          ]}
        >
          {rows.map((r) => (
            <tr key={r.vendor_org_id} data-vendor={r.name}>
              <td>{r.name || r.vendor_org_id}</td>
              <td className="num money">{formatMicro(r.earned_micro, lng)}</td>
              <td className="num money">{formatMicro(r.paid_out_micro, lng)}</td>
              <td className="num money">{formatMicro(r.payable_micro, lng)}</td>
              <td>{r.connect_account ? <span className="mono">{r.connect_account}</span> : <span className="muted">{t('payments.no_connect')}</span>}</td>
            </tr>
          ))}
        </DataTable>
      </AsyncBlock>
      <div className="grid-2">
        <PayVendorForm vendors={vendors} onDone={list.reload} />
        <ConnectForm vendors={vendors} onDone={list.reload} />
      </div>
    </section>
  );
}

function PayVendorForm({ vendors, onDone }: { vendors: ReturnType<typeof useOrgs>; onDone: () => void }) {
  const { t } = useTranslation();
  const [form, setForm] = useState({ vendor_org_id: '', amount: '', reference: '' });
  const { error, fields, busy, run } = useSubmit();
  const [paid, setPaid] = useState<Payout | null>(null);
  const amount = form.amount.trim() ? parseCredits(form.amount) : 0n;
  // Paying out moves money out of the platform: the form's submit asks first, in a dialog.
  const [asking, setAsking] = useState(false);
  const ask = (e: FormEvent) => {
    e.preventDefault();
    setAsking(true);
  };
  const submit = async (e?: FormEvent) => {
    e?.preventDefault();
    setAsking(false);
    setPaid(null);
    await run(
      () => {
        const errs: Record<string, string> = {};
        if (!form.vendor_org_id) errs.vendor_org_id = t('payments.vendor_required');
        if (amount === null || amount < 0n) errs.amount_micro = t('editor.bad_amount');
        return errs;
      },
      async () => {
        setPaid(await billing().payVendor({ vendor_org_id: form.vendor_org_id, amount_micro: Number(amount), reference: form.reference.trim() }));
        setForm({ vendor_org_id: '', amount: '', reference: '' });
        onDone();
      },
    );
  };
  return (
    <form className="inline-form" onSubmit={ask} noValidate aria-labelledby="pay-h">
      <h2 id="pay-h">{t('payments.pay_title')}</h2>
      {paid && (
        <Notice tone="success">
          {t('payments.paid', { amount: formatMicro(paid.amount_micro, i18n.language), method: t(`payments.method_${paid.method}`, { defaultValue: paid.method }) })}
        </Notice>
      )}
      <ProblemAlert error={error} listFields={(f) => !['vendor_org_id', 'amount_micro', 'reference'].includes(f)} />
      <OrgSelect label={t('payments.vendor')} orgs={vendors} value={form.vendor_org_id} onChange={(v) => setForm({ ...form, vendor_org_id: v })} error={fields.vendor_org_id} chooseLabel={t('payments.choose_vendor')} />
      <TextField label={t('payments.amount')} inputMode="decimal" value={form.amount} onChange={(e) => setForm({ ...form, amount: e.target.value })} error={fields.amount_micro} hint={t('payments.amount_hint')} />
      <TextField label={t('payments.reference')} value={form.reference} onChange={(e) => setForm({ ...form, reference: e.target.value })} error={fields.reference} maxLength={200} />
      <button type="submit" className="button button--primary" disabled={busy} aria-busy={busy} aria-haspopup="dialog">
        {busy ? t('common.working') : t('payments.pay')}
      </button>
      <ConfirmDialog
        open={asking}
        title={t('payments.pay_confirm_title')}
        question={t('payments.pay_confirm_question', { amount: amount !== null ? formatMicro(amount, i18n.language) : '—' })}
        confirmLabel={t('payments.pay')}
        onConfirm={() => submit()}
        onClose={() => setAsking(false)}
      />
    </form>
  );
}

function ConnectForm({ vendors, onDone }: { vendors: ReturnType<typeof useOrgs>; onDone: () => void }) {
  const { t } = useTranslation();
  const [vendor, setVendor] = useState('');
  const [account, setAccount] = useState('');
  const { error, fields, busy, run } = useSubmit();
  const [saved, setSaved] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setSaved(false);
    await run(
      () => {
        const errs: Record<string, string> = {};
        if (!vendor) errs.vendor = t('payments.vendor_required');
        if (!account.trim()) errs.stripe_account_id = t('payments.account_required');
        return errs;
      },
      async () => {
        await billing().setConnectAccount(vendor, account.trim());
        setSaved(true);
        onDone();
      },
    );
  };
  return (
    <form className="inline-form" onSubmit={(e) => void submit(e)} noValidate aria-labelledby="connect-h">
      <h2 id="connect-h">{t('payments.connect_title')}</h2>
      <p className="muted">{t('payments.connect_lead')}</p>
      {saved && <Notice tone="success">{t('payments.connect_saved')}</Notice>}
      <ProblemAlert error={error} listFields={(f) => f !== 'stripe_account_id'} />
      <OrgSelect label={t('payments.vendor')} orgs={vendors} value={vendor} onChange={setVendor} error={fields.vendor} chooseLabel={t('payments.choose_vendor')} />
      <TextField label={t('payments.connect_account')} placeholder="acct_…" value={account} onChange={(e) => setAccount(e.target.value)} error={fields.stripe_account_id} maxLength={100} required />
      <button type="submit" className="button button--primary" disabled={busy} aria-busy={busy}>
        {busy ? t('common.working') : t('payments.save_connect')}
      </button>
    </form>
  );
}
