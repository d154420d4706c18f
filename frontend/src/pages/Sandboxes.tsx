import { useEffect, useState, type FormEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { Link, useNavigate, useSearchParams } from 'react-router-dom';
import { billing, marketplace, testbed } from '../api/endpoints';
import { isApiError, type ApiError } from '../api/problem';
import { toMicro } from '../api/money';
import type { Reservation, Template, TestbedListing } from '../api/types';
import { AsyncBlock, DataTable, Notice, PagedBlock, PageHeader, ProblemAlert, SelectField, StateBadge } from '../components/ui';
import { Unreachable } from '../components/Unreachable';
import { formatBytes, formatDateTime, formatNumber } from '../lib/format';
import { cofundRule, cofundShare, creditText, holdMicro, ratePerHourMicro } from '../lib/sandboxCost';
import { useAsync, useDocumentTitle, useInterval, usePaged } from '../lib/hooks';
import { tryItOf } from '../lib/tryit';

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
              <td className="num money">{creditText(s.charge_micro)}</td>
            </tr>
          ))}
        </DataTable>
      </PagedBlock>
    </section>
  );
}

const DURATIONS = [15, 30, 60, 120, 240, 480];

/** boundedDurations are the durations offered for a listing: the usual steps within its minimum and maximum, and
 * the maximum itself (a 45-minute maximum offers 15, 30 and 45). */
export function boundedDurations(listing?: Pick<TestbedListing, 'min_duration_minutes' | 'max_duration_minutes'>): number[] {
  if (!listing) return DURATIONS;
  const lo = Math.max(1, listing.min_duration_minutes);
  const hi = listing.max_duration_minutes;
  const out = DURATIONS.filter((d) => d >= lo && d <= hi);
  if (hi >= lo && !out.includes(hi)) out.push(hi);
  if (hi >= lo && !out.length) out.push(lo);
  return out.sort((x, y) => x - y);
}

/** LaunchSummary is what the launch button will start and what it costs, before it is pressed. */
function LaunchSummary({
  listing,
  template,
  image,
  count,
  minutes,
  hold,
  cofund,
  available,
  freeNow,
  counts,
  mountPath,
  mountFiles,
}: {
  listing?: TestbedListing;
  template?: Template;
  image?: string;
  mountPath?: string;
  mountFiles?: number;
  count: number;
  minutes: number;
  hold: bigint | null;
  cofund: bigint;
  available: bigint | null;
  freeNow?: number;
  counts: { gpu_count: number; free_now: number }[];
}) {
  const { t } = useTranslation();
  const cpu = template?.cpu_millis_per_gpu ? (template.cpu_millis_per_gpu * count) / 1000 : null;
  const mem = template?.memory_bytes_per_gpu ? template.memory_bytes_per_gpu * count : null;
  const row = (label: string, value: string, testId: string, money = false) => (
    <div>
      <dt>{label}</dt>
      <dd className={money ? 'money' : undefined} data-testid={testId}>
        {value}
      </dd>
    </div>
  );
  return (
    <section className="estimate launch-summary" aria-live="polite" aria-labelledby="estimate-h" data-testid="launch-summary">
      <h2 id="estimate-h" className="h3">
        {t('sandbox.summary')}
      </h2>
      <dl className="meta meta--stack">
        {row(t('sandbox.summary_gpus'), listing ? `${listing.gpu_model} × ${count}` : '—', 'sum-gpus')}
        {row(t('sandbox.summary_cpu'), cpu !== null ? t('sandbox.vcpus', { count: cpu, n: formatNumber(cpu) }) : '—', 'sum-cpu')}
        {row(t('sandbox.summary_memory'), mem !== null ? formatBytes(mem) : '—', 'sum-memory')}
        {row(t('sandbox.summary_disk'), listing?.disk_bytes ? formatBytes(listing.disk_bytes) : t('sandbox.disk_site'), 'sum-disk')}
        {row(t('sandbox.image'), image ?? '—', 'sum-image')}
        {mountPath && row(t('sandbox.summary_artifacts'), t('sandbox.mounted_read_only', { path: mountPath, count: mountFiles ?? 0 }), 'sum-artifacts')}
        {row(t('sandbox.rate'), listing ? t('sandbox.per_hour', { amount: creditText(ratePerHourMicro(listing.price_per_gpu_hour_micro, count)) }) : '—', 'sum-rate', true)}
        {row(t('sandbox.summary_hold', { minutes }), hold !== null ? creditText(hold) : '—', 'estimate', true)}
        {row(t('sandbox.summary_cofund'), hold !== null ? creditText(cofund) : '—', 'sum-cofund', true)}
        {row(t('wallet.available'), creditText(available), 'available', true)}
        {row(t('sandbox.summary_after'), hold !== null && available !== null ? creditText(available - hold) : '—', 'sum-after', true)}
        {row(t('sandbox.summary_free_now'), freeNow !== undefined ? t('sandbox.free_now', { count: freeNow }) : '—', 'sum-free')}
      </dl>
      {counts.length > 0 && (
        <p className="muted small" data-testid="sum-capacity">
          {t('sandbox.capacity_line', { list: counts.map((c) => `${c.gpu_count}: ${c.free_now}`).join(' · ') })}
        </p>
      )}
      {cofund > 0n && <p className="muted small">{t('sandbox.cofund_note')}</p>}
    </section>
  );
}

function Launch() {
  const { t } = useTranslation();
  useDocumentTitle(t('sandbox.launch_title'));
  const navigate = useNavigate();
  const [params, setParams] = useSearchParams();
  const listingId = params.get('listing') ?? '';
  // ?try=<model or dataset listing>: the sandbox runs that listing's try-it image on the compute listing chosen here.
  const tryId = params.get('try') ?? '';
  const tryListing = useAsync(() => (tryId ? marketplace().listing(tryId) : Promise.resolve(null)), [tryId]);
  const tryIt = tryItOf(tryListing.data?.published_version ?? undefined);
  // ?mount=<model or dataset listing>: its published files are mounted read-only at /artifacts/<listing>/.
  const mountId = params.get('mount') ?? '';
  const mountListing = useAsync(() => (mountId && mountId !== tryId ? marketplace().listing(mountId) : Promise.resolve(null)), [mountId, tryId]);
  const mounted = mountId === tryId ? tryListing.data : mountListing.data;
  const mountPath = mountId ? `/artifacts/${mountId}/` : undefined;
  const mountFiles = mounted?.published_version?.artifacts?.length ?? 0;
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
    if (mountId) next.mount = mountId;
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

  // Inputs offer only what the listing and its pool allow: GPU counts one ready node can hold, durations within
  // the listing's minimum and maximum (its maximum itself included).
  const durations = boundedDurations(listing);
  const counts = listing?.gpu_counts ?? [];
  const countOk = !listing || counts.some((c) => String(c.gpu_count) === count);
  const minutesOk = durations.includes(Number(minutes));
  useEffect(() => {
    if (listing && !countOk && counts.length) setCount(String(counts[0].gpu_count));
    if (listing && !minutesOk && durations.length) setMinutes(String(durations.includes(60) ? 60 : durations[0]));
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [listing?.id, countOk, minutesOk]);
  const n = Math.max(1, Number.parseInt(count, 10) || 1);
  const m = Math.max(1, Number.parseInt(minutes, 10) || 1);
  const estimate = listing ? holdMicro(listing.price_per_gpu_hour_micro, n, m) : null;
  const available = wallet.data ? toMicro(wallet.data.available_micro) : null;
  const short = estimate !== null && available !== null && estimate > available;
  const cofund = estimate !== null ? cofundShare(estimate, cofundRule(wallet.data?.grants)) : 0n;
  const freeNow = counts.find((c) => c.gpu_count === n)?.free_now;
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
        ...(mountId ? { mount_listing_id: mountId } : {}),
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
      <h1>
        {tryId || mountId ? t('sandbox.try_title', { title: (tryListing.data ?? mounted)?.published_version?.title ?? '…' }) : t('sandbox.launch_title')}
      </h1>
      {mountId && (
        <AsyncBlock loading={mountListing.loading} error={mountListing.error} onRetry={mountListing.reload}>
          <Notice>
            <span data-testid="mount-note">{t('sandbox.mount_intro', { path: mountPath, count: mountFiles })}</span>{' '}
            {!tryId && <Link to={`/listings/${encodeURIComponent(mountId)}`}>{t('sandbox.try_back')}</Link>}
          </Notice>
        </AsyncBlock>
      )}
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
            hint={tryId ? t('sandbox.try_listing_hint') : mountId ? t('sandbox.mount_listing_hint') : undefined}
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
          {listing && counts.length === 0 && <Notice tone="warning">{t('sandbox.no_ready_node')}</Notice>}
          <SelectField label={t('sandbox.gpu_count')} value={count} onChange={(e) => setCount(e.target.value)} error={fields.gpu_count} disabled={!listing || counts.length === 0} data-testid="gpu-count">
            {(listing ? counts : [{ gpu_count: 1, free_now: 0 }]).map((c) => (
              <option key={c.gpu_count} value={c.gpu_count}>
                {listing ? t('sandbox.count_option', { count: c.gpu_count, free: c.free_now }) : c.gpu_count}
              </option>
            ))}
          </SelectField>
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
          <LaunchSummary
            listing={listing}
            template={chosenTemplate}
            image={tryId ? tryIt?.image : chosenTemplate?.image}
            count={n}
            minutes={m}
            hold={estimate}
            cofund={cofund}
            available={available}
            freeNow={freeNow}
            counts={counts}
            mountPath={mountPath}
            mountFiles={mountFiles}
          />
          {short && (
            <Notice tone="warning">
              {t('sandbox.not_enough')} <Link to="/wallet">{t('sandbox.top_up')}</Link>
            </Notice>
          )}
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
                <>{t('sandbox.shortfall', { amount: creditText(error.problem.shortfall_micro) })} </>
              )}
              <Link to="/wallet">{t('sandbox.top_up')}</Link>
            </p>
          )}
          {reserved && <Notice tone="success">{t('sandbox.reserved', { at: formatDateTime(reserved.starts_at) })}</Notice>}
          <button type="submit" className="button button--primary" disabled={busy || !listing || (!template && !tryId) || listing.image_allowed === false || counts.length === 0}>
            {busy ? t('common.working') : tryId ? t('sandbox.try_launch') : t('sandbox.launch')}
          </button>
        </form>
      </AsyncBlock>
    </section>
  );
}
