import { useEffect, useState, type FormEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { Link, useNavigate, useSearchParams } from 'react-router-dom';
import { billing, marketplace, testbed } from '../api/endpoints';
import { isApiError, type ApiError } from '../api/problem';
import { estimateSandboxMicro, formatCredits, formatMicro, toMicro } from '../api/money';
import type { Reservation } from '../api/types';
import { AsyncBlock, DataTable, Notice, PagedBlock, PageHeader, ProblemAlert, SelectField, StateBadge, TextField } from '../components/ui';
import { Unreachable } from '../components/Unreachable';
import { formatDateTime } from '../lib/format';
import { useAsync, useDocumentTitle, useInterval, usePaged } from '../lib/hooks';
import { tryItOf } from '../lib/tryit';
import i18n from '../i18n';

export default function Sandboxes({ page }: { page: 'list' | 'launch' }) {
  return page === 'launch' ? <Launch /> : <SandboxList />;
}

function SandboxList() {
  const { t } = useTranslation();
  useDocumentTitle(t('sandbox.list_title'));
  const list = usePaged((cursor) => testbed().sandboxes(cursor), []);
  const busy = list.items.some((s) => !['stopped', 'failed'].includes(s.state));
  useInterval(() => list.refresh(), busy ? 5_000 : null);
  return (
    <section className="page">
      <PageHeader title={t('sandbox.list_title')}>
        <Link className="button button--primary" to="/sandboxes/new">
          {t('sandbox.launch')}
        </Link>
      </PageHeader>
      <PagedBlock list={list} emptyText={t('sandbox.none')}>
        <DataTable
          columns={[
            t('sandbox.sandbox'),
            t('vendor.state'),
            t('listing.gpu_model'),
            t('sandbox.template'),
            t('sandbox.started'),
            { label: t('sandbox.charge'), num: true },
          ]}
        >
          {list.items.map((s) => (
            <tr key={s.id}>
              <td>
                <Link to={`/sandboxes/${encodeURIComponent(s.id)}`} className="mono">
                  {s.id}
                </Link>
              </td>
              <td>
                <StateBadge state={s.state} />
                {s.unreachable_since && (
                  <>
                    {' '}
                    <Unreachable since={s.unreachable_since} />
                  </>
                )}
              </td>
              <td>
                {s.gpu_count} × {s.gpu_model}
              </td>
              <td>{s.template}</td>
              <td>{formatDateTime(s.started_at ?? s.created_at)}</td>
              <td className="num money">{s.charge_micro !== undefined && s.charge_micro !== null ? formatMicro(s.charge_micro, i18n.language) : '—'}</td>
            </tr>
          ))}
        </DataTable>
      </PagedBlock>
    </section>
  );
}

const DURATIONS = [15, 30, 60, 120, 240, 480];

function Launch() {
  const { t } = useTranslation();
  useDocumentTitle(t('sandbox.launch_title'));
  const navigate = useNavigate();
  const [params, setParams] = useSearchParams();
  const listingId = params.get('listing') ?? '';
  // ?try=<model or dataset listing>: the sandbox runs that listing's try-it image on the compute listing chosen here.
  const tryId = params.get('try') ?? '';
  const tryListing = useAsync(() => (tryId ? marketplace().listing(tryId) : Promise.resolve(null)), [tryId]);
  const tryIt = tryItOf(tryListing.data?.published_version);
  const listings = useAsync(() => testbed().listings(tryId || undefined), [tryId]);
  const templates = useAsync(() => testbed().templates(), []);
  const wallet = useAsync(() => billing().wallet(), []);
  const listing = listings.data?.items.find((l) => l.id === listingId);

  const [count, setCount] = useState('1');
  const [template, setTemplate] = useState('');
  const [minutes, setMinutes] = useState('60');
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const [reserved, setReserved] = useState<Reservation | null>(null);

  // The query names the compute listing and, when trying a model or dataset, that listing: both are kept.
  const choose = (id: string, replace = false) => {
    const next: Record<string, string> = {};
    if (id) next.listing = id;
    if (tryId) next.try = tryId;
    setParams(next, { replace });
  };
  useEffect(() => {
    const only = listings.data?.items.length === 1 ? listings.data.items[0] : undefined;
    if (!listingId && only && only.image_allowed !== false) choose(only.id, true);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [listings.data, listingId]);
  useEffect(() => {
    // A try-it sandbox needs no template (the try-it profile's limits); one chosen sets the limits only.
    if (!tryId && !template && templates.data?.items.length) {
      const shell = templates.data.items.find((x) => x.name === 'shell');
      setTemplate((shell ?? templates.data.items[0]).name);
    }
  }, [templates.data, template]);

  const durations = DURATIONS.filter(
    (d) => !listing || (d >= listing.min_duration_minutes && d <= listing.max_duration_minutes),
  );
  const n = Math.max(1, Number.parseInt(count, 10) || 1);
  const m = Math.max(1, Number.parseInt(minutes, 10) || 1);
  const estimate = listing ? estimateSandboxMicro(listing.price_per_gpu_hour_micro, n, m) : null;
  const available = wallet.data ? toMicro(wallet.data.available_micro) : null;
  const short = estimate !== null && available !== null && estimate > available;
  const fields = isApiError(error) ? error.fieldErrors() : {};
  const nextFree = isApiError(error) && error.code === 'no_capacity' ? ((error.problem.next_free_at as string | undefined) ?? null) : null;
  const chosenTemplate = templates.data?.items.find((x) => x.name === template);

  const launch = async (e: FormEvent) => {
    e.preventDefault();
    if (!listing) return;
    setError(undefined);
    setReserved(null);
    setBusy(true);
    try {
      const sb = await testbed().launch({
        listing_id: listing.id,
        gpu_model: listing.gpu_model,
        gpu_count: n,
        duration_minutes: m,
        ...(template ? { template } : {}),
        ...(tryId ? { image_listing_id: tryId } : {}),
      });
      navigate(`/sandboxes/${encodeURIComponent(sb.id)}`);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const reserve = async (at: string) => {
    try {
      const start = new Date(at);
      const end = new Date(start.getTime() + m * 60_000);
      setReserved(await testbed().reserve({ listing_id: listingId, gpu_count: n, starts_at: start.toISOString(), ends_at: end.toISOString() }));
      setError(undefined);
    } catch (err) {
      setError(err);
    }
  };

  return (
    <section className="page narrow">
      <h1>{tryId ? t('sandbox.try_title', { title: tryListing.data?.published_version?.title ?? '…' }) : t('sandbox.launch_title')}</h1>
      {tryId && (
        <AsyncBlock loading={tryListing.loading} error={tryListing.error} onRetry={tryListing.reload}>
          {tryIt ? (
            <Notice>
              {t('sandbox.try_intro')} <code className="hash">{tryIt.image}</code>{' '}
              <Link to={`/listings/${encodeURIComponent(tryId)}`}>{t('sandbox.try_back')}</Link>
            </Notice>
          ) : (
            <Notice tone="warning">{t('sandbox.try_none')}</Notice>
          )}
        </AsyncBlock>
      )}
      <AsyncBlock loading={listings.loading} error={listings.error ?? templates.error} onRetry={listings.reload} empty={!listings.loading && !listings.data?.items.length} emptyText={t('sandbox.no_listings')}>
        <form onSubmit={(e) => void launch(e)} noValidate>
          <SelectField
            label={t('sandbox.listing')}
            value={listingId}
            onChange={(e) => choose(e.target.value)}
            error={fields.listing_id}
            hint={tryId ? t('sandbox.try_listing_hint') : undefined}
            required
          >
            <option value="">{t('sandbox.choose_listing')}</option>
            {listings.data?.items.map((l) => (
              <option key={l.id} value={l.id} disabled={l.image_allowed === false}>
                {l.title} — {l.gpu_model} · {l.region}
                {l.image_allowed === false ? ` (${t('sandbox.image_not_allowed_here')})` : ''}
              </option>
            ))}
          </SelectField>
          {listing && (
            <p className="muted">
              {t('listing.gpu_model')}: <strong>{listing.gpu_model}</strong>
            </p>
          )}
          <TextField label={t('sandbox.gpu_count')} type="number" min={1} max={64} value={count} onChange={(e) => setCount(e.target.value)} error={fields.gpu_count} />
          <SelectField
            label={tryId ? t('sandbox.try_limits') : t('sandbox.template')}
            value={template}
            onChange={(e) => setTemplate(e.target.value)}
            error={fields.template}
            hint={tryId && !template ? t('sandbox.try_profile_hint') : chosenTemplate?.description}
          >
            {tryId && <option value="">{t('sandbox.try_profile')}</option>}
            {templates.data?.items.map((tp) => (
              <option key={tp.name} value={tp.name}>
                {tp.title || tp.name}
              </option>
            ))}
          </SelectField>
          <SelectField label={t('sandbox.duration')} value={minutes} onChange={(e) => setMinutes(e.target.value)} error={fields.duration_minutes}>
            {durations.map((d) => (
              <option key={d} value={d}>
                {t('sandbox.minutes', { count: d })}
              </option>
            ))}
          </SelectField>
          <section className="estimate" aria-live="polite" aria-labelledby="estimate-h">
            <h2 id="estimate-h" className="h3">
              {t('sandbox.estimate')}
            </h2>
            <dl className="meta meta--stack">
              <div>
                <dt>{t('listing.price_per_gpu_hour')}</dt>
                <dd className="money">{listing ? formatCredits(listing.price_per_gpu_hour_micro, i18n.language, { rate: true }) : '—'}</dd>
              </div>
              <div>
                <dt>{t('sandbox.estimated_cost', { count: n, minutes: m })}</dt>
                <dd className="money" data-testid="estimate">{estimate !== null ? formatMicro(estimate, i18n.language) : '—'}</dd>
              </div>
              <div>
                <dt>{t('wallet.available')}</dt>
                <dd className="money" data-testid="available">{wallet.data ? formatCredits(wallet.data.available_micro, i18n.language, { unit: false }) : '—'}</dd>
              </div>
            </dl>
            {short && (
              <Notice tone="warning">
                {t('sandbox.not_enough')} <Link to="/wallet">{t('sandbox.top_up')}</Link>
              </Notice>
            )}
          </section>
          {nextFree ? (
            <div className="alert alert--warning" role="alert">
              <p className="alert__title">{(error as ApiError).problem.title}</p>
              <p>{t('sandbox.next_slot', { at: formatDateTime(nextFree) })}</p>
              <button type="button" className="button" onClick={() => void reserve(nextFree)}>
                {t('sandbox.reserve_slot')}
              </button>
            </div>
          ) : (
            <ProblemAlert error={error} />
          )}
          {isApiError(error) && error.code === 'insufficient_credits' && (
            <p>
              {typeof error.problem.shortfall_micro === 'number' && (
                <>{t('sandbox.shortfall', { amount: formatMicro(error.problem.shortfall_micro, i18n.language) })} </>
              )}
              <Link to="/wallet">{t('sandbox.top_up')}</Link>
            </p>
          )}
          {reserved && <Notice tone="success">{t('sandbox.reserved', { at: formatDateTime(reserved.starts_at) })}</Notice>}
          <button type="submit" className="button button--primary" disabled={busy || !listing || (!template && !tryId) || listing.image_allowed === false}>
            {busy ? t('common.working') : tryId ? t('sandbox.try_launch') : t('sandbox.launch')}
          </button>
        </form>
      </AsyncBlock>
    </section>
  );
}
