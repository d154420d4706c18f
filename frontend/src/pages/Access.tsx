import { useTranslation } from 'react-i18next';
import { Link } from 'react-router-dom';
import { marketplace } from '../api/endpoints';
import type { Entitlement } from '../api/types';
import { DataTable, PagedBlock, PageHeader, ProblemAlert, StateBadge } from '../components/ui';
import { DownloadButton } from './ListingPage';
import { formatBytes, formatDate, formatDateTime } from '../lib/format';
import { useAsync, useDocumentTitle, useListingTitles, usePaged } from '../lib/hooks';
import { localTitle, useLocalText } from '../lib/localized';
import { useSession } from '../auth/session';
import { formatMicro } from '../api/money';
import i18n from '../i18n';

/** listingTitle reads a listing's title (its published version, else the pending one) in the UI's language. */
export async function listingTitle(id: string): Promise<string> {
  const l = await marketplace().listing(id);
  const v = l.published_version ?? l.pending_version;
  return v ? localTitle(v, i18n.language || 'en').text : l.slug;
}

export default function Access({ page }: { page: 'entitlements' | 'orders' | 'requests' }) {
  if (page === 'requests') return <Requests />;
  return page === 'orders' ? <Orders /> : <Entitlements />;
}

/** Requests lists the access requests the buyer's organisation sent, with each vendor's answer and note. */
function Requests() {
  const { t } = useTranslation();
  const s = useSession();
  useDocumentTitle(t('access.requests_title'));
  const list = usePaged((cursor) => marketplace().accessRequests(cursor), []);
  // The route lists what the organisation made or received: a buyer's page shows what it made.
  const mine = list.items.filter((r) => r.organization_id === s.activeOrg?.id);
  const titles = useListingTitles(mine.map((r) => r.listing_id), listingTitle);
  return (
    <section className="page">
      <PageHeader title={t('access.requests_title')} />
      <p className="lead">{t('access.requests_intro')}</p>
      <PagedBlock list={list} shown={mine} emptyText={t('access.no_requests')}>
        <ul className="plain-list stack requests">
          {mine.map((r) => (
            <li key={r.id} className="card" data-testid="my-request">
              <h2 className="h3">
                <Link to={`/listings/${encodeURIComponent(r.listing_id)}`}>{titles[r.listing_id] ?? r.listing_id}</Link>{' '}
                <StateBadge state={r.state} />
              </h2>
              <dl className="meta">
                <div>
                  <dt>{t('access.requested_at')}</dt>
                  <dd>{formatDateTime(r.created_at)}</dd>
                </div>
                {r.decided_at && (
                  <div>
                    <dt>{t('access.decided_at')}</dt>
                    <dd>{formatDateTime(r.decided_at)}</dd>
                  </div>
                )}
              </dl>
              <p>
                <span className="muted">{t('access.purpose')}:</span> {r.purpose}
              </p>
              {r.comment && (
                <figure className="vendor-note">
                  <figcaption>{t('access.vendor_note')}</figcaption>
                  <blockquote>{r.comment}</blockquote>
                </figure>
              )}
            </li>
          ))}
        </ul>
      </PagedBlock>
    </section>
  );
}

function Entitlements() {
  const { t } = useTranslation();
  useDocumentTitle(t('access.entitlements_title'));
  const list = usePaged((cursor) => marketplace().entitlements(cursor), []);
  return (
    <section className="page">
      <PageHeader title={t('access.entitlements_title')} />
      <PagedBlock list={list} emptyText={t('access.no_entitlements')}>
        <ul className="plain-list stack">
          {list.items.map((e) => (
            <EntitlementItem key={e.id} e={e} />
          ))}
        </ul>
      </PagedBlock>
    </section>
  );
}

function EntitlementItem({ e }: { e: Entitlement }) {
  const { t } = useTranslation();
  // Entitlements name the listing; its files come with the listing's published version.
  const listing = useAsync(() => (e.kind === 'compute' ? Promise.resolve(undefined) : marketplace().listing(e.listing_id)), [e.listing_id, e.kind]);
  const files = listing.data?.published_version?.artifacts ?? [];
  const title = useLocalText(e);
  return (
    <li className="card">
      <h2 className="h3">
        <Link to={`/listings/${encodeURIComponent(e.listing_id)}`} {...title.titleLang}>
          {title.title.text}
        </Link>{' '}
        <span className={`kind kind--${e.kind}`}>{t(`kind.${e.kind}`)}</span>
      </h2>
      <p className="muted">
        {t('access.granted', { at: formatDate(e.created_at) })}
        {e.expires_at && ` · ${t('access.expires', { at: formatDate(e.expires_at) })}`}
      </p>
      {listing.error ? <ProblemAlert error={listing.error} /> : null}
      {files.length > 0 && (
        <ul className="plain-list">
          {files.map((a) => (
            <li key={a.id}>
              <DownloadButton artifact={a} />{' '}
              <span className="muted">
                {formatBytes(a.size_bytes)} · sha256 <span className="mono hash">{a.sha256}</span>
              </span>
            </li>
          ))}
        </ul>
      )}
    </li>
  );
}

function Orders() {
  const { t } = useTranslation();
  useDocumentTitle(t('access.orders_title'));
  const list = usePaged((cursor) => marketplace().orders(cursor), []);
  const titles = useListingTitles(list.items.map((o) => o.listing_id), listingTitle);
  return (
    <section className="page">
      <PageHeader title={t('access.orders_title')} />
      <PagedBlock list={list} emptyText={t('access.no_orders')}>
        <DataTable
          columns={[
            t('access.order'),
            t('vendor.listing'),
            t('access.plan'),
            { label: t('access.quantity'), num: true },
            { label: t('access.total'), num: true },
            t('vendor.state'),
            t('staff.when'),
          ]}
        >
          {list.items.map((o) => (
            <tr key={o.id}>
              <td className="mono small">{o.id}</td>
              <td>
                <Link to={`/listings/${encodeURIComponent(o.listing_id)}`}>{titles[o.listing_id] ?? o.listing_id}</Link>
              </td>
              <td>{t(`plan_kind.${o.plan_kind}`, { defaultValue: o.plan_kind })}</td>
              <td className="num">{o.quantity}</td>
              <td className="num money">{formatMicro(o.amount_micro, i18n.language)}</td>
              <td>
                <StateBadge state={o.state} />
              </td>
              <td>{formatDateTime(o.created_at)}</td>
            </tr>
          ))}
        </DataTable>
      </PagedBlock>
    </section>
  );
}
