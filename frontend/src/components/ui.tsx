// Small shared building blocks: labelled fields with their server-side errors, problem alerts, async states.

import { Children, Fragment, cloneElement, isValidElement, useEffect, useId, useRef, useState, type ReactNode, type Ref, type InputHTMLAttributes, type SelectHTMLAttributes, type TextareaHTMLAttributes } from 'react';
import { useTranslation } from 'react-i18next';
import { Link, useInRouterContext } from 'react-router-dom';
import { isApiError } from '../api/problem';
import { ResendVerification } from './EmailVerification';

/** Where a person turns on two-step sign-in; 403 mfa_required answers point there. */
export const SECURITY_PATH = '/account/security';

interface FieldShell {
  label: string;
  error?: string;
  hint?: string;
}

function describedBy(id: string, error?: string, hint?: string): string | undefined {
  const ids = [hint ? `${id}-hint` : '', error ? `${id}-error` : ''].filter(Boolean).join(' ');
  return ids || undefined;
}

function FieldWrap({ id, label, error, hint, children }: FieldShell & { id: string; children: ReactNode }) {
  return (
    <div className={`field${error ? ' field--invalid' : ''}`}>
      <label htmlFor={id}>{label}</label>
      {children}
      {hint && (
        <p className="field__hint" id={`${id}-hint`}>
          {hint}
        </p>
      )}
      {error && (
        <p className="field__error" id={`${id}-error`}>
          {error}
        </p>
      )}
    </div>
  );
}

export function TextField({ label, error, hint, id, ...rest }: FieldShell & InputHTMLAttributes<HTMLInputElement> & { ref?: Ref<HTMLInputElement> }) {
  const auto = useId();
  const fid = id ?? auto;
  return (
    <FieldWrap id={fid} label={label} error={error} hint={hint}>
      <input id={fid} aria-invalid={error ? true : undefined} aria-describedby={describedBy(fid, error, hint)} {...rest} />
    </FieldWrap>
  );
}

export function SelectField({
  label,
  error,
  hint,
  id,
  children,
  ...rest
}: FieldShell & SelectHTMLAttributes<HTMLSelectElement>) {
  const auto = useId();
  const fid = id ?? auto;
  return (
    <FieldWrap id={fid} label={label} error={error} hint={hint}>
      <select id={fid} aria-invalid={error ? true : undefined} aria-describedby={describedBy(fid, error, hint)} {...rest}>
        {children}
      </select>
    </FieldWrap>
  );
}

export function TextAreaField({ label, error, hint, id, ...rest }: FieldShell & TextareaHTMLAttributes<HTMLTextAreaElement> & { ref?: Ref<HTMLTextAreaElement> }) {
  const auto = useId();
  const fid = id ?? auto;
  return (
    <FieldWrap id={fid} label={label} error={error} hint={hint}>
      <textarea id={fid} aria-invalid={error ? true : undefined} aria-describedby={describedBy(fid, error, hint)} {...rest} />
    </FieldWrap>
  );
}

/**
 * ProblemAlert shows an error's problem title and detail. Field messages are shown beside their fields; with
 * listFields (no form to put them in, or fields the form does not show) they are listed here too.
 */
export function ProblemAlert({ error, onDismiss, listFields }: { error: unknown; onDismiss?: () => void; listFields?: boolean | ((field: string) => boolean) }) {
  const { t } = useTranslation();
  const routed = useInRouterContext();
  if (!error) return null;
  if (isApiError(error) && error.code === 'mfa_required') {
    // Staff actions (and writes of organisations that require it) need a session signed in with a second factor.
    return (
      <div className="alert alert--error" role="alert">
        <p className="alert__title">{t('mfa.required_title')}</p>
        <p className="alert__detail">
          {t('mfa.required_body')}{' '}
          {routed ? <Link to={SECURITY_PATH}>{t('mfa.required_link')}</Link> : <a href={SECURITY_PATH}>{t('mfa.required_link')}</a>}
        </p>
      </div>
    );
  }
  let title = t('error.generic');
  let detail: string | undefined;
  if (isApiError(error) && error.code === 'email_unverified') {
    // Not a failure to report but a step to take: say so in the UI's words, with the way to get a new link.
    return (
      <div className="alert alert--error" role="alert">
        <p className="alert__title">{t('verify.required_title')}</p>
        <p className="alert__detail">{t('verify.required_body')}</p>
        <ResendVerification />
      </div>
    );
  }
  if (isApiError(error)) {
    title = error.code === 'network_error' ? t('error.network') : error.problem.title;
    detail = error.code === 'network_error' ? undefined : error.problem.detail;
  } else if (error instanceof Error) {
    detail = error.message;
  }
  const fieldList =
    listFields && isApiError(error)
      ? (error.problem.fields ?? []).filter((f) => (typeof listFields === 'function' ? listFields(f.field) : true))
      : [];
  return (
    <div className="alert alert--error" role="alert">
      <p className="alert__title">{title}</p>
      {detail && <p className="alert__detail">{detail}</p>}
      {fieldList.length > 0 && (
        <ul className="alert__fields">
          {fieldList.map((f) => (
            <li key={f.field}>
              <code>{f.field}</code>: {f.message}
            </li>
          ))}
        </ul>
      )}
      {onDismiss && (
        <button type="button" className="button button--quiet" onClick={onDismiss}>
          {t('common.dismiss')}
        </button>
      )}
    </div>
  );
}

export function Notice({ children, tone = 'info' }: { children: ReactNode; tone?: 'info' | 'success' | 'warning' }) {
  return (
    <div className={`alert alert--${tone}`} role="status">
      {children}
    </div>
  );
}

export function Loading({ label }: { label?: string }) {
  const { t } = useTranslation();
  return (
    <p className="loading" role="status" aria-live="polite">
      <span className="spinner" aria-hidden="true" />
      {label ?? t('common.loading')}
    </p>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <p className="empty">{children}</p>;
}

/** AsyncBlock renders the loading, error or empty state, or its children. */
export function AsyncBlock({
  loading,
  error,
  empty,
  emptyText,
  onRetry,
  children,
}: {
  loading: boolean;
  error: unknown;
  empty?: boolean;
  emptyText?: string;
  onRetry?: () => void;
  children: ReactNode;
}) {
  const { t } = useTranslation();
  if (error) {
    return (
      <div>
        <ProblemAlert error={error} listFields />
        {onRetry && (
          <button type="button" className="button" onClick={onRetry}>
            {t('common.retry')}
          </button>
        )}
      </div>
    );
  }
  if (loading && empty !== false) return <Loading />;
  if (empty) return <Empty>{emptyText ?? t('common.empty')}</Empty>;
  return <>{children}</>;
}

export function LoadMore({ hasMore, loading, onClick }: { hasMore: boolean; loading: boolean; onClick: () => void }) {
  const { t } = useTranslation();
  if (!hasMore) return null;
  return (
    <div className="load-more">
      <button type="button" className="button" onClick={onClick} disabled={loading} aria-busy={loading}>
        {loading ? t('common.loading') : t('common.load_more')}
      </button>
    </div>
  );
}

export function StateBadge({ state }: { state: string }) {
  const { t } = useTranslation();
  return <span className={`badge badge--${state}`}>{t(`state.${state}`, { defaultValue: state })}</span>;
}

export function PageHeader({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <div className="page-header">
      <h1>{title}</h1>
      {children && <div className="page-header__actions">{children}</div>}
    </div>
  );
}

/** A table column heading: its label, or the label with `num` (right-aligned numbers) or `hidden` (for screen readers only). */
export type Column = string | { label: string; num?: boolean; hidden?: boolean };

/**
 * DataTable is the app's scrollable table: a focusable `.table-scroll` box (so a keyboard can scroll it), an optional
 * caption, a header row of column headings (`false` entries are left out) and the rows given as children.
 */
export function DataTable({
  columns,
  children,
  className,
  label,
  caption,
  captionHidden,
}: {
  columns: (Column | false)[];
  children: ReactNode;
  className?: string;
  label?: string;
  caption?: ReactNode;
  captionHidden?: boolean;
}) {
  const labels = columns.filter((c): c is Column => c !== false).map((c) => (typeof c === 'string' ? c : c.hidden ? '' : c.label));
  return (
    <div className="table-scroll" tabIndex={0}>
      <table className={className ? `responsive ${className}` : 'responsive'} aria-label={label}>
        {caption !== undefined && <caption className={captionHidden ? 'visually-hidden' : undefined}>{caption}</caption>}
        <thead>
          <tr>
            {columns.map((c, i) =>
              c === false ? null : typeof c === 'string' ? (
                <th key={i} scope="col">
                  {c}
                </th>
              ) : (
                <th key={i} scope="col" className={c.num ? 'num' : undefined}>
                  {c.hidden ? <span className="visually-hidden">{c.label}</span> : c.label}
                </th>
              ),
            )}
          </tr>
        </thead>
        <tbody>{withDataLabels(children, labels)}</tbody>
      </table>
    </div>
  );
}

/**
 * withDataLabels gives each cell of the rows written directly as children (`<tr>`, in arrays or fragments) a
 * `data-label` with its column's heading, which the phone layout (styles.css, "Phone") shows above the value when a
 * row becomes a card. A cell that has its own data-label, or spans columns, keeps what it has; rows drawn by another
 * component set theirs themselves.
 */
function withDataLabels(children: ReactNode, labels: string[]): ReactNode {
  return Children.map(children, (row) => {
    if (!isValidElement<{ children?: ReactNode }>(row)) return row;
    if (row.type === Fragment) return cloneElement(row, undefined, withDataLabels(row.props.children, labels));
    if (row.type !== 'tr') return row;
    let col = 0;
    const cells = Children.map(row.props.children, (cell) => {
      if (!isValidElement<{ colSpan?: number; 'data-label'?: string }>(cell) || (cell.type !== 'td' && cell.type !== 'th')) return cell;
      const at = col;
      const span = cell.props.colSpan ?? 1;
      col += span;
      if (cell.props['data-label'] !== undefined || span > 1 || !labels[at]) return cell;
      return cloneElement(cell, { 'data-label': labels[at] });
    });
    return cloneElement(row, undefined, cells);
  });
}

/** What PagedBlock needs of a paged list (usePaged's answer). */
export interface PagedState {
  items: readonly unknown[];
  loading: boolean;
  error: unknown;
  hasMore: boolean;
  loadMore: () => void;
  reload: () => void;
}

/**
 * PagedBlock renders a paged list's loading, error (with a retry unless `retry` is false) or empty state, else its
 * children, then the "load more" button. `shown` overrides the items counted for the empty state (a filtered view).
 */
export function PagedBlock({
  list,
  shown,
  emptyText,
  retry = true,
  children,
}: {
  list: PagedState;
  shown?: readonly unknown[];
  emptyText: string;
  retry?: boolean;
  children: ReactNode;
}) {
  return (
    <>
      <AsyncBlock loading={list.loading} error={list.error} empty={!list.loading && (shown ?? list.items).length === 0} emptyText={emptyText} onRetry={retry ? list.reload : undefined}>
        {children}
      </AsyncBlock>
      <LoadMore hasMore={list.hasMore} loading={list.loading} onClick={list.loadMore} />
    </>
  );
}

/**
 * ConfirmButton asks before a destructive action, in place: the button opens the question with the confirming
 * button and Cancel (focused, so Enter does no harm); Cancel puts the focus back on the button.
 */
export function ConfirmButton({
  label,
  accessibleLabel,
  question,
  confirmLabel,
  onConfirm,
}: {
  label: string;
  accessibleLabel?: string;
  question: string;
  confirmLabel: string;
  onConfirm: () => Promise<unknown>;
}) {
  const { t } = useTranslation();
  const [open, setOpen] = useState(false);
  const [busy, setBusy] = useState(false);
  const trigger = useRef<HTMLButtonElement>(null);
  const cancel = useRef<HTMLButtonElement>(null);
  const back = useRef(false);
  useEffect(() => {
    if (open) cancel.current?.focus();
    else if (back.current) trigger.current?.focus();
    back.current = false;
  }, [open]);
  if (!open) {
    return (
      <button ref={trigger} type="button" className="button button--danger" aria-label={accessibleLabel} onClick={() => setOpen(true)}>
        {label}
      </button>
    );
  }
  const confirm = async () => {
    setBusy(true);
    try {
      await onConfirm();
    } finally {
      setBusy(false);
      setOpen(false);
    }
  };
  return (
    <div className="confirm" role="group" aria-label={accessibleLabel ?? label}>
      <p className="confirm__question">{question}</p>
      <button type="button" className="button button--danger" disabled={busy} aria-busy={busy} onClick={() => void confirm()}>
        {confirmLabel}
      </button>
      <button
        ref={cancel}
        type="button"
        className="button"
        onClick={() => {
          back.current = true;
          setOpen(false);
        }}
      >
        {t('common.cancel')}
      </button>
    </div>
  );
}

/**
 * CopyField shows a value to copy (a secret shown once, a command) read-only, with a Copy button. Without the
 * asynchronous clipboard (a page served over plain HTTP) it selects the text and asks the browser to copy it; if
 * that fails too, the text stays selected and the field says to copy it by hand.
 */
export function CopyField({ label, value, copyLabel, multiline, rows = 3 }: { label: string; value: string; copyLabel: string; multiline?: boolean; rows?: number }) {
  const { t } = useTranslation();
  const id = useId();
  const [copied, setCopied] = useState<'' | 'ok' | 'failed'>('');
  const box = useRef<HTMLInputElement & HTMLTextAreaElement>(null);
  const copy = async () => {
    try {
      if (navigator.clipboard?.writeText) {
        await navigator.clipboard.writeText(value);
      } else {
        box.current?.select();
        if (!document.execCommand('copy')) throw new Error('copy refused');
      }
      setCopied('ok');
    } catch {
      box.current?.select();
      setCopied('failed');
    }
  };
  const common = { id, ref: box, className: 'mono', readOnly: true, value, onFocus: (e: { target: { select: () => void } }) => e.target.select() };
  return (
    <div className="field copy-field">
      <label htmlFor={id}>{label}</label>
      <div className="copy-field__row">
        {multiline ? <textarea {...common} rows={rows} spellCheck={false} /> : <input {...common} spellCheck={false} />}
        <button type="button" className="button" aria-label={copyLabel} onClick={() => void copy()}>
          {t('common.copy')}
        </button>
      </div>
      <p className="field__hint" aria-live="polite">
        {copied === 'ok' ? t('common.copied') : copied === 'failed' ? t('common.copy_failed') : ''}
      </p>
    </div>
  );
}
