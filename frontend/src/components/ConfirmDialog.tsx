// Confirmations before consequential actions (stop a sandbox, retire a listing, pay out) in a modal dialog: the
// native <dialog> opened with showModal() makes the rest of the page inert, Escape cancels, the focus starts on
// Cancel (so Enter does no harm) and goes back, on close, to what had it before (the button that opened it).

import { useEffect, useId, useRef, useState, type ReactNode } from 'react';
import { useTranslation } from 'react-i18next';

export function ConfirmDialog({
  open,
  title,
  question,
  confirmLabel,
  onConfirm,
  onClose,
}: {
  open: boolean;
  title: string;
  question: ReactNode;
  confirmLabel: string;
  onConfirm: () => Promise<unknown> | unknown;
  onClose: () => void;
}) {
  const { t } = useTranslation();
  const [busy, setBusy] = useState(false);
  const dialog = useRef<HTMLDialogElement>(null);
  const cancel = useRef<HTMLButtonElement>(null);
  const back = useRef<HTMLElement | null>(null);
  const titleId = useId();
  const bodyId = useId();
  useEffect(() => {
    const d = dialog.current;
    if (!open || !d) return;
    back.current = document.activeElement instanceof HTMLElement ? document.activeElement : null;
    // jsdom has no showModal: the open attribute shows it there (unit tests), without the inert page.
    if (typeof d.showModal === 'function') {
      if (!d.open) d.showModal();
    } else d.setAttribute('open', '');
    cancel.current?.focus();
    return () => {
      if (d.open && typeof d.close === 'function') d.close();
      back.current?.focus();
    };
  }, [open]);
  if (!open) return null;
  const confirm = async () => {
    setBusy(true);
    try {
      await onConfirm();
    } finally {
      setBusy(false);
      onClose();
    }
  };
  return (
    <dialog
      ref={dialog}
      className="confirm-dialog"
      aria-labelledby={titleId}
      aria-describedby={bodyId}
      onCancel={(e) => {
        e.preventDefault(); // Escape: close through React, so the focus goes back where it was
        onClose();
      }}
    >
      <h2 id={titleId} className="h3">
        {title}
      </h2>
      <div id={bodyId}>{typeof question === 'string' ? <p>{question}</p> : question}</div>
      <div className="confirm-dialog__actions">
        <button ref={cancel} type="button" className="button" onClick={onClose}>
          {t('common.cancel')}
        </button>
        <button type="button" className="button button--danger" disabled={busy} aria-busy={busy} onClick={() => void confirm()} data-testid="confirm">
          {confirmLabel}
        </button>
      </div>
    </dialog>
  );
}

/** ConfirmDialogButton is a button that asks in a ConfirmDialog before it acts. */
export function ConfirmDialogButton({
  label,
  accessibleLabel,
  className = 'button button--danger',
  disabled,
  testId,
  ...dialog
}: {
  label: string;
  accessibleLabel?: string;
  title: string;
  question: ReactNode;
  confirmLabel: string;
  onConfirm: () => Promise<unknown> | unknown;
  className?: string;
  disabled?: boolean;
  testId?: string;
}) {
  const [open, setOpen] = useState(false);
  return (
    <>
      <button type="button" className={className} aria-label={accessibleLabel} disabled={disabled} onClick={() => setOpen(true)} aria-haspopup="dialog" data-testid={testId}>
        {label}
      </button>
      <ConfirmDialog open={open} onClose={() => setOpen(false)} {...dialog} />
    </>
  );
}
