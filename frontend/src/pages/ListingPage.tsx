import { useState, type FormEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { Link, useParams } from 'react-router-dom';
import { marketplace } from '../api/endpoints';
import type { Order, Plan } from '../api/types';
import { useSession } from '../auth/session';
import { AvailabilityCalendar } from '../components/AvailabilityCalendar';
import { SafeHtml } from '../components/Html';
import { AsyncBlock, Notice, ProblemAlert, StateBadge, TextAreaField } from '../components/ui';
import { formatDate } from '../lib/format';
import { useAsync, useDocumentTitle } from '../lib/hooks';

export function ListingPage() {
  const { t } = useTranslation();
  const { id = '' } = useParams();
  const s = useSession();
  const res = useAsync(() => marketplace().listing(id), [id]);
  const l = res.data;
  useDocumentTitle(l?.title ?? t('listing.title'));
  const [ordered, setOrdered] = useState<Order | null>(null);
  const [orderError, setOrderError] = useState<unknown>();
  const [busyPlan, setBusyPlan] = useState<string | null>(null);
  const [purpose, setPurpose] = useState('');
  const [accessError, setAccessError] = useState<unknown>();
  const [accessSent, setAccessSent] = useState(false);

  const order = async (p: Plan) => {
    setBusyPlan(p.id);
    setOrderError(undefined);
    try {
      setOrdered(await marketplace().order(id, p.id, 1));
    } catch (e) {
      setOrderError(e);
    } finally {
      setBusyPlan(null);
    }
  };
  const askAccess = async (e: FormEvent) => {
    e.preventDefault();
    setAccessError(undefined);
    try {
      await marketplace().requestAccess(id, purpose);
      setAccessSent(true);
    } catch (err) {
      setAccessError(err);
    }
  };
  const canLaunch = s.status === 'authenticated' && (s.kind === 'sme' || s.kind === 'partner');

  return (
    <section className="page listing">
      <AsyncBlock loading={res.loading} error={res.error} onRetry={res.reload}>
        {l && (
          <>
            <div className="page-header">
              <div>
                <p className="eyebrow">
                  <span className={`kind kind--${l.kind}`}>{t(`kind.${l.kind}`)}</span> · {l.vendor?.name}
                </p>
                <h1>{l.title}</h1>
                <p className="lead">{l.summary}</p>
              </div>
              {l.state && l.state !== 'published' && <StateBadge state={l.state} />}
            </div>
            <div className="two-col">
              <div>
                <section aria-labelledby="card-h">
                  <h2 id="card-h" className="visually-hidden">
                    {t('listing.card')}
                  </h2>
                  <SafeHtml html={l.card_html ?? ''} />
                </section>
                {l.kind === 'compute' && l.compute && (
                  <section aria-labelledby="avail-h">
                    <h2 id="avail-h">{t('availability.title')}</h2>
                    <AvailabilityCalendar gpuModel={l.compute.gpu_model} />
                  </section>
                )}
                <section aria-labelledby="ratings-h">
                  <h2 id="ratings-h">{t('listing.ratings')}</h2>
                  {l.ratings && l.ratings.count > 0 ? (
                    <>
                      <p>{t('listing.rating_summary', { average: l.ratings.average?.toFixed(1), count: l.ratings.count })}</p>
                      <ul className="plain-list">
                        {l.ratings.items.map((r) => (
                          <li key={r.id}>
                            <span aria-label={t('listing.stars', { count: r.stars })}>{'★'.repeat(r.stars)}</span>{' '}
                            {r.comment} <span className="muted">— {r.organization_name}, {formatDate(r.created_at)}</span>
                          </li>
                        ))}
                      </ul>
                    </>
                  ) : (
                    <p className="muted">{t('listing.no_ratings')}</p>
                  )}
                </section>
              </div>
              <aside className="side">
                <dl className="meta meta--stack">
                  <div>
                    <dt>{t('listing.license')}</dt>
                    <dd>{l.license || '—'}</dd>
                  </div>
                  <div>
                    <dt>{t('listing.residency')}</dt>
                    <dd>{l.residency || '—'}</dd>
                  </div>
                  {l.tags?.length > 0 && (
                    <div>
                      <dt>{t('listing.tags')}</dt>
                      <dd>
                        {l.tags.map((tag) => (
                          <Link key={tag} className="tag" to={`/catalogue?tag=${encodeURIComponent(tag)}`}>
                            {tag}
                          </Link>
                        ))}
                      </dd>
                    </div>
                  )}
                  {l.compute && (
                    <>
                      <div>
                        <dt>{t('listing.gpu_model')}</dt>
                        <dd>{l.compute.gpu_model}</dd>
                      </div>
                      <div>
                        <dt>{t('listing.price_per_gpu_hour')}</dt>
                        <dd className="money">{l.compute.price_per_gpu_hour_display}</dd>
                      </div>
                    </>
                  )}
                </dl>
                {canLaunch && l.kind === 'compute' && (
                  <Link className="button button--primary button--block" to={`/sandboxes/new?listing=${encodeURIComponent(l.id)}`}>
                    {t('listing.launch')}
                  </Link>
                )}
                <section aria-labelledby="plans-h">
                  <h2 id="plans-h">{t('listing.plans')}</h2>
                  {ordered && <Notice tone="success">{t('listing.ordered', { state: t(`state.${ordered.state}`) })}</Notice>}
                  <ProblemAlert error={orderError} />
                  {l.plans?.length ? (
                    <ul className="plain-list plans">
                      {l.plans.map((p) => (
                        <li key={p.id} className="plan">
                          <p className="plan__name">{p.name}</p>
                          <p className="money">{p.price_display}</p>
                          {p.description && <p className="muted">{p.description}</p>}
                          {s.status === 'authenticated' && !l.gated && (
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
                {l.gated && s.status === 'authenticated' && (
                  <section aria-labelledby="access-h">
                    <h2 id="access-h">{t('listing.request_access')}</h2>
                    {accessSent ? (
                      <Notice tone="success">{t('listing.access_sent')}</Notice>
                    ) : (
                      <form onSubmit={(e) => void askAccess(e)}>
                        <ProblemAlert error={accessError} />
                        <TextAreaField
                          label={t('listing.purpose')}
                          value={purpose}
                          onChange={(e) => setPurpose(e.target.value)}
                          required
                          rows={3}
                        />
                        <button type="submit" className="button button--primary">
                          {t('listing.send_request')}
                        </button>
                      </form>
                    )}
                  </section>
                )}
                <section aria-labelledby="versions-h">
                  <h2 id="versions-h">{t('listing.versions')}</h2>
                  <ul className="plain-list">
                    {(l.versions ?? []).map((v) => (
                      <li key={v.id}>
                        v{v.version} <StateBadge state={v.state} /> <span className="muted">{formatDate(v.reviewed_at ?? v.created_at)}</span>
                      </li>
                    ))}
                  </ul>
                </section>
              </aside>
            </div>
          </>
        )}
      </AsyncBlock>
    </section>
  );
}
