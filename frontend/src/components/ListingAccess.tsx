// The buyer's side of a listing's access: the lock banner of a gated listing, the organisation's access request
// with the vendor's answer, the request form, and the download snippets. What to show comes from the listing's
// `viewer` object (the API's own rules), never from guesses in the browser.

import { useState, type FormEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { Link } from 'react-router-dom';
import { marketplace } from '../api/endpoints';
import type { Listing } from '../api/types';
import { formatDateTime } from '../lib/format';
import { CopyField, Notice, ProblemAlert, StateBadge, TextAreaField } from './ui';

/** LockBanner tells everyone that a gated listing's files wait for the vendor's approval (until they may download). */
export function LockBanner({ listing }: { listing: Listing }) {
  const { t } = useTranslation();
  const v = listing.published_version;
  if (!v?.gated || listing.viewer?.can_download) return null;
  return (
    <div className="lock-banner" role="note" aria-labelledby="lock-h">
      <svg className="lock-banner__icon" viewBox="0 0 24 24" width="24" height="24" aria-hidden="true" focusable="false">
        <path d="M7 10V7a5 5 0 0 1 10 0v3" fill="none" stroke="currentColor" strokeWidth="2" />
        <rect x="4" y="10" width="16" height="11" rx="2" fill="currentColor" />
      </svg>
      <div>
        <p id="lock-h" className="lock-banner__title">
          {t('listing.locked_title')}
        </p>
        <p>{t('listing.locked')}</p>
        {(listing.viewer?.access_request || listing.viewer?.can_request_access) && (
          <p>
            <a href="#access-h">{t('listing.see_your_access')}</a>
          </p>
        )}
      </div>
    </div>
  );
}

/** AccessPanel shows the organisation's newest access request (state, dates, the vendor's note) and the form to ask. */
export function AccessPanel({ listing, onChange }: { listing: Listing; onChange: () => void }) {
  const { t } = useTranslation();
  const [purpose, setPurpose] = useState('');
  const [error, setError] = useState<unknown>();
  const [sent, setSent] = useState(false);
  const [busy, setBusy] = useState(false);
  const viewer = listing.viewer;
  const req = viewer?.access_request ?? null;
  if (!listing.published_version?.gated || !viewer) return null;
  if (!req && !viewer.can_request_access) return null;
  const ask = async (e: FormEvent) => {
    e.preventDefault();
    setError(undefined);
    setBusy(true);
    try {
      await marketplace().requestAccess(listing.id, purpose);
      setSent(true);
      setPurpose('');
      onChange();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <section aria-labelledby="access-h" className="access-panel">
      <h2 id="access-h">{req ? t('listing.your_access') : t('listing.request_access')}</h2>
      {sent && <Notice tone="success">{t('listing.access_sent')}</Notice>}
      {req && (
        <div className={`access-status access-status--${req.state}`} data-testid="access-status">
          <p>
            <StateBadge state={req.state} /> <span className="muted small">{t('listing.access_requested_on', { at: formatDateTime(req.created_at) })}</span>
            {req.decided_at && <span className="muted small"> · {t('listing.access_decided_on', { at: formatDateTime(req.decided_at) })}</span>}
          </p>
          <p className="small">{t(`listing.access_${req.state}_help`)}</p>
          {req.note && (
            <figure className="vendor-note">
              <figcaption>{t('listing.vendor_note')}</figcaption>
              <blockquote>{req.note}</blockquote>
            </figure>
          )}
        </div>
      )}
      {viewer.can_request_access && (
        <form onSubmit={(e) => void ask(e)}>
          {req && <h3>{t('listing.ask_again')}</h3>}
          <ProblemAlert error={error} />
          <TextAreaField label={t('listing.purpose')} value={purpose} onChange={(e) => setPurpose(e.target.value)} required rows={3} />
          <button type="submit" className="button button--primary" disabled={busy} aria-busy={busy}>
            {t('listing.send_request')}
          </button>
        </form>
      )}
      <p className="small">
        <Link to="/requests">{t('listing.all_my_requests')}</Link>
      </p>
    </section>
  );
}

/** pythonSnippet is the huggingface_hub download of a repository (docs/hf-api.md). */
export function pythonSnippet(origin: string, repo: string, kind: string): string {
  const type = kind === 'dataset' ? ', repo_type="dataset"' : '';
  return [
    `export HF_ENDPOINT=${origin}`,
    'export HF_TOKEN=tmk_...   # an API token of your organisation',
    `python -c 'from huggingface_hub import snapshot_download`,
    `print(snapshot_download("${repo}"${type}))'`,
  ].join('\n');
}

/** curlSnippet downloads one artifact with an API token: the endpoint answers a signed, expiring link that curl follows. */
export function curlSnippet(origin: string, a: { id: string; name: string }): string {
  return `curl -fL -H "Authorization: Bearer $TAMARACK_TOKEN" -o ${a.name} ${origin}/api/v1/marketplace/artifacts/${encodeURIComponent(a.id)}/download`;
}

/** DownloadSnippets offers the copyable Python and CLI downloads of a model or dataset the caller may download. */
export function DownloadSnippets({ listing }: { listing: Listing }) {
  const { t } = useTranslation();
  const repo = listing.hub_repo;
  if (!repo || !listing.viewer?.can_download || listing.kind === 'compute' || !listing.published_version?.artifacts?.length) return null;
  const origin = typeof window === 'undefined' ? '' : window.location.origin;
  return (
    <section aria-labelledby="snippets-h" className="snippets">
      <h2 id="snippets-h">{t('listing.download_code')}</h2>
      <p className="small">{t('listing.download_code_intro')}</p>
      <CopyField label={t('listing.snippet_python')} value={pythonSnippet(origin, repo, listing.kind)} copyLabel={t('listing.copy_python')} multiline rows={4} />
      <CopyField label={t('listing.snippet_cli')} value={`tamarack listings download ${repo}`} copyLabel={t('listing.copy_cli')} />
      {listing.published_version.artifacts.map((a) => (
        <CopyField
          key={a.id}
          label={t('listing.snippet_curl', { name: a.name })}
          value={curlSnippet(origin, a)}
          copyLabel={t('listing.copy_curl', { name: a.name })}
        />
      ))}
    </section>
  );
}
