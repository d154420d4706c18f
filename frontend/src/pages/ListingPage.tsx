import { useState, type FormEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { Link, useParams } from 'react-router-dom';
import { marketplace } from '../api/endpoints';
import type { Artifact, Order, Plan } from '../api/types';
import { useSession } from '../auth/session';
import { AvailabilityCalendar } from '../components/AvailabilityCalendar';
import { ConfirmDialogButton } from '../components/ConfirmDialog';
import { SafeHtml } from '../components/Html';
import { isApiError } from '../api/problem';
import { AsyncBlock, Notice, ProblemAlert, SelectField, StateBadge, TextAreaField, TextField } from '../components/ui';
import { formatBytes, formatDate, formatDateTime, formatRating } from '../lib/format';
import { useAsync, useDocumentTitle } from '../lib/hooks';
import { tryItOf } from '../lib/tryit';
import { useLocalText } from '../lib/localized';
import { AccessPanel, DownloadSnippets, LockBanner } from '../components/ListingAccess';
import { formatCredits } from '../api/money';
import i18n from '../i18n';

/** DownloadButton asks for a signed, expiring link (the bearer token cannot ride on a plain link) and follows it. */
export function DownloadButton({ artifact }: { artifact: Pick<Artifact, 'id' | 'name'> }) {
  const { t } = useTranslation();
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const go = async () => {
    setBusy(true);
    setError(undefined);
    try {
      const link = await marketplace().downloadLink(artifact.id);
      window.location.assign(link.url);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <button type="button" className="button" onClick={() => void go()} disabled={busy} aria-busy={busy}>
        {t('access.download', { name: artifact.name })}
      </button>
      <ProblemAlert error={error} />
    </>
  );
}

/** RateForm lets an entitled organisation rate the listing once (the server says when it may not). */
function RateForm({ listingId, onDone }: { listingId: string; onDone: () => void }) {
  const { t } = useTranslation();
  const [stars, setStars] = useState('5');
  const [body, setBody] = useState('');
  const [displayName, setDisplayName] = useState('');
  const [error, setError] = useState<unknown>();
  const [done, setDone] = useState(false);
  const fields = isApiError(error) ? error.fieldErrors() : {};
  const send = async (e: FormEvent) => {
    e.preventDefault();
    setError(undefined);
    try {
      await marketplace().rate(listingId, Number(stars), body, displayName);
      setDone(true);
      onDone();
    } catch (err) {
      setError(err);
    }
  };
  if (done) return <Notice tone="success">{t('listing.rated')}</Notice>;
  return (
    <form className="inline-form" onSubmit={(e) => void send(e)} noValidate>
      <h3>{t('listing.rate')}</h3>
      <ProblemAlert error={error} listFields={(f) => f !== 'stars' && f !== 'body' && f !== 'display_name'} />
      <SelectField label={t('listing.your_rating')} value={stars} onChange={(e) => setStars(e.target.value)} error={fields.stars}>
        {[5, 4, 3, 2, 1].map((n) => (
          <option key={n} value={n}>
            {t('listing.stars', { count: n })}
          </option>
        ))}
      </SelectField>
      <TextAreaField label={t('listing.review_body')} value={body} onChange={(e) => setBody(e.target.value)} error={fields.body} rows={3} />
      <TextField
        label={t('listing.review_name')}
        hint={t('listing.review_name_hint')}
        value={displayName}
        onChange={(e) => setDisplayName(e.target.value)}
        error={fields.display_name}
        maxLength={60}
      />
      <button type="submit" className="button">
        {t('listing.send_rating')}
      </button>
    </form>
  );
}

/** VersionHistory lists every version with its history (created, changed fields, submitted, decisions). */
function VersionHistory({ listingId }: { listingId: string }) {
  const { t } = useTranslation();
  const res = useAsync(() => marketplace().versions(listingId), [listingId]);
  return (
    <AsyncBlock loading={res.loading} error={res.error} empty={!res.loading && !res.data?.items.length} onRetry={res.reload}>
      <ol className="plain-list history">
        {[...(res.data?.items ?? [])].reverse().map((v) => (
          <li key={v.id}>
            <p>
              v{v.version} <StateBadge state={v.state} />
            </p>
            <ul className="plain-list small">
              {(v.history ?? []).map((h, i) => (
                <li key={i}>
                  <span className="muted">{formatDateTime(h.at)}</span> {t(`history.${h.action}`, { defaultValue: h.action })}
                  {h.fields && h.fields.length > 0 && h.action !== 'created' && h.action !== 'seeded' && (
                    <span className="muted"> ({h.fields.map((f) => t(`staff.field_${f}`, { defaultValue: f })).join(', ')})</span>
                  )}
                  {h.comment && <q className="review-comment"> {h.comment}</q>}
                </li>
              ))}
            </ul>
          </li>
        ))}
      </ol>
    </AsyncBlock>
  );
}

export function ListingPage() {
  const { t } = useTranslation();
  const { id = '' } = useParams();
  const s = useSession();
  const res = useAsync(() => marketplace().listing(id), [id]);
  const ratings = useAsync(() => marketplace().ratings(id), [id]);
  const l = res.data;
  const v = l?.published_version ?? l?.pending_version ?? undefined;
  const local = useLocalText(v);
  useDocumentTitle(v ? local.title.text : t('listing.title'));
  // The viewer object (what the caller may do) changes with orders, requests and decisions: refresh in place
  // (a reload would replace the page by its loading state).
  const refresh = () => void marketplace().listing(id).then(res.setData, () => undefined);
  const viewer = l?.viewer;
  const [ordered, setOrdered] = useState<Order | null>(null);
  const [orderError, setOrderError] = useState<unknown>();
  const [busyPlan, setBusyPlan] = useState<string | null>(null);

  const order = async (p: Plan) => {
    setBusyPlan(p.id);
    setOrderError(undefined);
    try {
      setOrdered(await marketplace().order(id, p.id, 1));
      refresh();
    } catch (e) {
      setOrderError(e);
    } finally {
      setBusyPlan(null);
    }
  };
  const signedIn = s.status === 'authenticated';
  const canLaunch = signedIn && (s.kind === 'sme' || s.kind === 'partner');
  const gpuPlan = v?.plans?.find((p) => p.kind === 'per_gpu_hour');
  const tryIt = l?.kind !== 'compute' ? tryItOf(v) : undefined;
  // Its vendor and programme staff see every version with who changed what.
  const ownListing = signedIn && !!l && s.activeOrg?.id === l.vendor.id;
  const insider = ownListing || (signedIn && s.isStaff);

  return (
    <section className="page listing">
      <AsyncBlock loading={res.loading} error={res.error} onRetry={res.reload}>
        {l && v && (
          <>
            <div className="page-header">
              <div>
                <p className="eyebrow">
                  <span className={`kind kind--${l.kind}`}>{t(`kind.${l.kind}`)}</span> · {l.vendor?.name}
                </p>
                <h1 {...local.titleLang}>{local.title.text}</h1>
                <p className="lead" {...local.summaryLang}>
                  {local.summary.text}
                </p>
              </div>
              {l.status !== 'published' && <StateBadge state={l.status} />}
            </div>
            {l.status_reason && <Notice tone="warning">{l.status_reason}</Notice>}
            {signedIn && s.isStaff && !ownListing && l.status === 'published' && (
              <SuspendListing id={l.id} title={local.title.text} onDone={refresh} />
            )}
            <LockBanner listing={l} />
            <div className="two-col">
              <div>
                <section aria-labelledby="card-h">
                  <h2 id="card-h" className="visually-hidden">
                    {t('listing.card')}
                  </h2>
                  <SafeHtml html={v.card_html ?? ''} />
                </section>
                {v.artifacts?.length > 0 && (
                  <section aria-labelledby="files-h">
                    <h2 id="files-h">{t('editor.artifacts')}</h2>
                    <ul className="plain-list artifacts">
                      {v.artifacts.map((a) => (
                        <li key={a.id}>
                          <strong>{a.name}</strong> <span className="muted">{formatBytes(a.size_bytes)}</span>
                          <br />
                          <code className="hash" aria-label={t('editor.sha256')}>
                            sha256 {a.sha256}
                          </code>
                          {signedIn && (viewer ? viewer.can_download : true) && (
                            <div>
                              <DownloadButton artifact={a} />
                            </div>
                          )}
                        </li>
                      ))}
                    </ul>
                  </section>
                )}
                <DownloadSnippets listing={l} />
                {l.kind === 'compute' && v.compute && (
                  <section aria-labelledby="avail-h">
                    <h2 id="avail-h">{t('availability.title')}</h2>
                    <AvailabilityCalendar gpuModel={v.compute.gpu_model ?? ''} poolId={v.compute.pool_id} />
                  </section>
                )}
                <section aria-labelledby="ratings-h">
                  <h2 id="ratings-h">{t('listing.ratings')}</h2>
                  {l.rating && l.rating.count > 0 ? (
                    <>
                      <p>{t('listing.rating_summary', { average: formatRating(l.rating.average), count: l.rating.count })}</p>
                      <ul className="plain-list">
                        {(ratings.data?.items ?? []).map((r) => (
                          <li key={r.id}>
                            <span aria-label={t('listing.stars', { count: r.stars })}>{'★'.repeat(r.stars)}</span> {r.body}{' '}
                            <span className="muted">
                              — {r.display_name}, {formatDate(r.created_at)}
                            </span>
                          </li>
                        ))}
                      </ul>
                    </>
                  ) : (
                    <p className="muted">{t('listing.no_ratings')}</p>
                  )}
                  {viewer?.can_rate && !ownListing && l.status === 'published' ? (
                    <RateForm
                      listingId={l.id}
                      onDone={() => {
                        ratings.reload();
                        refresh();
                      }}
                    />
                  ) : (
                    signedIn && !ownListing && !s.isStaff && <p className="muted small">{t('listing.rating_needs_access')}</p>
                  )}
                </section>
              </div>
              <aside className="side">
                <dl className="meta meta--stack">
                  <div>
                    <dt>{t('listing.license')}</dt>
                    <dd>
                      {v.license?.url ? <a href={v.license.url}>{v.license.spdx}</a> : v.license?.spdx || '—'}
                    </dd>
                  </div>
                  <div>
                    <dt>{t('listing.residency')}</dt>
                    <dd>{v.residency || '—'}</dd>
                  </div>
                  {v.tags?.length > 0 && (
                    <div>
                      <dt>{t('listing.tags')}</dt>
                      <dd>
                        {v.tags.map((tag) => (
                          <Link key={tag} className="tag" to={`/catalogue?tag=${encodeURIComponent(tag)}`}>
                            {tag}
                          </Link>
                        ))}
                      </dd>
                    </div>
                  )}
                  {v.dataset && (
                    <div>
                      <dt>{t('editor.format')}</dt>
                      <dd>{v.dataset.format}</dd>
                    </div>
                  )}
                  {v.model && (
                    <div>
                      <dt>{t('editor.framework')}</dt>
                      <dd>
                        {v.model.framework} · {v.model.task}
                      </dd>
                    </div>
                  )}
                  {v.compute && (
                    <>
                      <div>
                        <dt>{t('listing.gpu_model')}</dt>
                        <dd>
                          {v.compute.gpu_model} ({v.compute.vram_gb} GB)
                        </dd>
                      </div>
                      <div>
                        <dt>{t('vendor.region')}</dt>
                        <dd>{v.compute.region}</dd>
                      </div>
                      {gpuPlan && (
                        <div>
                          <dt>{t('listing.price_per_gpu_hour')}</dt>
                          <dd className="money">{formatCredits(gpuPlan.price_micro, i18n.language, { rate: true })}</dd>
                        </div>
                      )}
                    </>
                  )}
                </dl>
                {tryIt && (
                  <section aria-labelledby="try-h" className="try-it">
                    <h2 id="try-h">{t('listing.try_it')}</h2>
                    <p className="small">{t('listing.try_it_intro')}</p>
                    <dl className="meta meta--stack">
                      <div>
                        <dt>{t('listing.try_image')}</dt>
                        <dd>
                          <code className="hash">{tryIt.image}</code>
                        </dd>
                      </div>
                      {tryIt.command && tryIt.command.length > 0 && (
                        <div>
                          <dt>{t('listing.try_command')}</dt>
                          <dd>
                            <code>{tryIt.command.join(' ')}</code>
                          </dd>
                        </div>
                      )}
                      {tryIt.ports && tryIt.ports.length > 0 && (
                        <div>
                          <dt>{t('listing.try_ports')}</dt>
                          <dd>{tryIt.ports.join(', ')}</dd>
                        </div>
                      )}
                    </dl>
                    {(canLaunch || (signedIn && s.isStaff)) && l.status === 'published' ? (
                      // The testbed runs it only for organisations with access (the listing's viewer says so):
                      // others learn what to do first instead of meeting a refusal on the launch page.
                      ownListing || s.isStaff || !viewer || viewer.entitled ? (
                        <Link className="button button--primary button--block" to={`/sandboxes/new?try=${encodeURIComponent(l.id)}${v?.artifacts?.length ? `&mount=${encodeURIComponent(l.id)}` : ''}`}>
                          {t('listing.try_it_button')}
                        </Link>
                      ) : (
                        <p className="small" data-testid="try-needs-access">
                          {t(v.gated ? 'listing.try_it_needs_access_gated' : 'listing.try_it_needs_access')}
                          {v.gated && (
                            <>
                              {' '}
                              <a href="#access-h">{t('listing.see_your_access')}</a>
                            </>
                          )}
                        </p>
                      )
                    ) : (
                      s.status === 'anonymous' && (
                        <p>
                          <Link to={`/signin?next=${encodeURIComponent(`/listings/${l.id}`)}`}>{t('listing.sign_in_to_try')}</Link>
                        </p>
                      )
                    )}
                  </section>
                )}
                {!tryIt && l.kind !== 'compute' && (v?.artifacts?.length ?? 0) > 0 && l.status === 'published' && (canLaunch || (signedIn && s.isStaff)) && (
                  // No image of its own: a compute listing's template runs with the files mounted read-only.
                  <section aria-labelledby="try-files-h" className="try-it">
                    <h2 id="try-files-h">{t('listing.try_files')}</h2>
                    <p className="small">{t('listing.try_files_intro', { path: `/artifacts/${l.id}/` })}</p>
                    {ownListing || s.isStaff || !viewer || viewer.entitled ? (
                      <Link className="button button--primary button--block" to={`/sandboxes/new?mount=${encodeURIComponent(l.id)}`}>
                        {t('listing.try_it_button')}
                      </Link>
                    ) : (
                      <p className="small" data-testid="try-needs-access">
                        {t(v.gated ? 'listing.try_it_needs_access_gated' : 'listing.try_it_needs_access')}
                      </p>
                    )}
                  </section>
                )}
                {canLaunch && l.kind === 'compute' && (
                  <Link className="button button--primary button--block" to={`/sandboxes/new?listing=${encodeURIComponent(l.id)}`}>
                    {t('listing.launch')}
                  </Link>
                )}
                {l.kind !== 'compute' && (
                  <section aria-labelledby="plans-h">
                    <h2 id="plans-h">{t('listing.plans')}</h2>
                    {ordered && (
                      <Notice tone="success">
                        {t('listing.ordered', { state: t(`state.${ordered.state}`) })}{' '}
                        {ordered.state === 'fulfilled' && <Link to="/entitlements">{t('listing.see_downloads')}</Link>}
                      </Notice>
                    )}
                    <ProblemAlert error={orderError} />
                    {v.plans?.length ? (
                      <ul className="plain-list plans">
                        {v.plans.map((p) => (
                          <li key={p.id} className="plan">
                            <p className="plan__name">{p.name}</p>
                            <p className="money">
                              {p.kind === 'free' ? t('listing.free') : `${formatCredits(p.price_micro, i18n.language, { rate: true })} · ${t(`plan_kind.${p.kind}`)}`}
                            </p>
                            {signedIn && !v.gated && l.status === 'published' && !ownListing && (
                              <button
                                type="button"
                                className="button"
                                onClick={() => void order(p)}
                                disabled={busyPlan !== null}
                                aria-label={t('listing.order_plan', { plan: p.name })}
                              >
                                {busyPlan === p.id ? t('common.working') : t('listing.order')}
                              </button>
                            )}
                          </li>
                        ))}
                      </ul>
                    ) : (
                      <p className="muted">{t('listing.no_plans')}</p>
                    )}
                    {s.status === 'anonymous' && (
                      <p>
                        <Link to={`/signin?next=${encodeURIComponent(`/listings/${l.id}`)}`}>{t('listing.sign_in_to_order')}</Link>
                      </p>
                    )}
                  </section>
                )}
                {signedIn && <AccessPanel listing={l} onChange={refresh} />}
                <section aria-labelledby="versions-h">
                  <h2 id="versions-h">{t('listing.versions')}</h2>
                  {insider ? (
                    <VersionHistory listingId={l.id} />
                  ) : (
                    <ul className="plain-list">
                      {[l.published_version, l.pending_version]
                        .filter((x): x is NonNullable<typeof x> => !!x)
                        .map((x) => (
                          <li key={x.id}>
                            v{x.version} <StateBadge state={x.state} />{' '}
                            <span className="muted">{formatDate(x.decided_at ?? x.updated_at ?? x.created_at)}</span>
                          </li>
                        ))}
                    </ul>
                  )}
                </section>
              </aside>
            </div>
          </>
        )}
      </AsyncBlock>
    </section>
  );
}

/** SuspendListing lets programme staff hide a published listing, with a reason its vendor reads, after a confirmation. */
function SuspendListing({ id, title, onDone }: { id: string; title: string; onDone: () => void }) {
  const { t } = useTranslation();
  const [reason, setReason] = useState('');
  const [error, setError] = useState<unknown>();
  const suspend = async () => {
    setError(undefined);
    try {
      await marketplace().suspend(id, reason.trim());
      setReason('');
      onDone();
    } catch (e) {
      setError(e);
    }
  };
  return (
    <div className="staff-actions">
      {error !== undefined && <ProblemAlert error={error} listFields onDismiss={() => setError(undefined)} />}
      <ConfirmDialogButton
        label={t('listing.suspend')}
        accessibleLabel={t('listing.suspend_named', { title })}
        title={t('listing.suspend_title')}
        question={
          <>
            <p>{t('listing.suspend_question', { title })}</p>
            <TextAreaField label={t('listing.suspend_reason')} value={reason} onChange={(e) => setReason(e.target.value)} rows={3} required />
          </>
        }
        confirmLabel={t('listing.suspend_confirm')}
        onConfirm={suspend}
        testId="suspend-listing"
      />
    </div>
  );
}
