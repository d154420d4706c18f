// Receipts and monthly statements as PDFs, for the wallet page. The API needs the bearer token, so a link
// fetches the PDF through the API client and opens the bytes; its href is the API path (copyable, and what the
// browser tests follow).

import { useState, type MouseEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { formatMicro } from '../../api/money';
import { AsyncBlock, DataTable, ProblemAlert } from '../ui';
import { formatDate } from '../../lib/format';
import { useAsync } from '../../lib/hooks';
import { charts } from './api';

/** PdfLink downloads a PDF of the API in the reader's language. */
export function PdfLink({ path, filename, children, label }: { path: string; filename: string; children: string; label?: string }) {
  const { i18n } = useTranslation();
  const [error, setError] = useState<unknown>();
  const open = async (e: MouseEvent) => {
    e.preventDefault();
    setError(undefined);
    try {
      const res = await charts().pdf(path, i18n.language);
      const url = URL.createObjectURL(await res.blob());
      const a = document.createElement('a');
      a.href = url;
      a.download = filename;
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    } catch (err) {
      setError(err);
    }
  };
  return (
    <>
      <a href={path} onClick={(e) => void open(e)} aria-label={label} data-pdf={path} type="application/pdf">
        {children}
      </a>
      {error ? <ProblemAlert error={error} /> : null}
    </>
  );
}

function monthLabel(month: string, lang: string): string {
  const d = new Date(`${month}-01T00:00:00Z`);
  if (Number.isNaN(d.getTime())) return month;
  return new Intl.DateTimeFormat(lang.startsWith('fr') ? 'fr-CA' : 'en-CA', { month: 'long', year: 'numeric', timeZone: 'UTC' }).format(d);
}

/** Receipts lists the organisation's purchases with a receipt link for each credited one. */
export function Receipts({ orgId }: { orgId: string }) {
  const { t, i18n } = useTranslation();
  const lang = i18n.language;
  const q = useAsync(() => charts().purchases(orgId), [orgId]);
  const rows = q.data?.items ?? [];
  return (
    <section aria-labelledby="receipts-h" data-testid="receipts">
      <h2 id="receipts-h">{t('documents.receipts_title')}</h2>
      <AsyncBlock loading={q.loading} error={q.error} onRetry={q.reload} empty={!q.loading && rows.length === 0} emptyText={t('documents.no_purchases')}>
        <DataTable caption={t('documents.receipts_title')} captionHidden columns={[t('documents.date'), { label: t('documents.credits'), num: true }, t('documents.method'), t('documents.status'), t('documents.receipt')]}>
          {rows.map((p) => (
            <tr key={p.id}>
              <td>{formatDate(p.created_at)}</td>
              <td className="num money">{formatMicro(p.amount_micro, lang)}</td>
              <td>{t(`documents.method_${p.method}`, { defaultValue: p.method })}</td>
              <td>{t(`documents.status_${p.status}`, { defaultValue: p.status })}</td>
              <td>
                {p.receipt_path ? (
                  <PdfLink path={p.receipt_path} filename={`receipt-${p.id}.pdf`} label={t('documents.receipt_for', { date: formatDate(p.created_at) })}>
                    {t('documents.receipt')}
                  </PdfLink>
                ) : (
                  <span className="muted">{t('documents.no_receipt')}</span>
                )}
              </td>
            </tr>
          ))}
        </DataTable>
      </AsyncBlock>
    </section>
  );
}

/** MonthlyStatements lists the months with a statement, newest first, each a PDF link. */
export function MonthlyStatements({ orgId }: { orgId: string }) {
  const { t, i18n } = useTranslation();
  const q = useAsync(() => charts().statementMonths(orgId), [orgId]);
  const months = q.data?.items ?? [];
  return (
    <section aria-labelledby="statements-h" data-testid="statements">
      <h2 id="statements-h">{t('documents.statements_title')}</h2>
      <p className="muted">{t('documents.statements_hint')}</p>
      <AsyncBlock loading={q.loading} error={q.error} onRetry={q.reload} empty={!q.loading && months.length === 0} emptyText={t('documents.no_statements')}>
        <ul className="statement-list">
          {months.map((m) => (
            <li key={m.month}>
              <PdfLink path={m.pdf_path} filename={`statement-${m.month}.pdf`}>
                {t('documents.statement_for', { month: monthLabel(m.month, i18n.language) })}
              </PdfLink>
            </li>
          ))}
        </ul>
      </AsyncBlock>
    </section>
  );
}
