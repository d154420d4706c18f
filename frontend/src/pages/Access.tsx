import { useTranslation } from 'react-i18next';
import { Link } from 'react-router-dom';
import { marketplace } from '../api/endpoints';
import { AsyncBlock, LoadMore, PageHeader, StateBadge } from '../components/ui';
import { formatBytes, formatDate, formatDateTime } from '../lib/format';
import { useDocumentTitle, usePaged } from '../lib/hooks';

export default function Access({ page }: { page: 'entitlements' | 'orders' }) {
  return page === 'orders' ? <Orders /> : <Entitlements />;
}

function Entitlements() {
  const { t } = useTranslation();
  useDocumentTitle(t('access.entitlements_title'));
  const list = usePaged((cursor) => marketplace().entitlements(cursor), []);
  return (
    <section className="page">
      <PageHeader title={t('access.entitlements_title')} />
      <AsyncBlock loading={list.loading} error={list.error} empty={!list.loading && list.items.length === 0} emptyText={t('access.no_entitlements')} onRetry={list.reload}>
        <ul className="plain-list stack">
          {list.items.map((e) => (
            <li key={e.id} className="card">
              <h2 className="h3">
                <Link to={`/listings/${encodeURIComponent(e.listing.id)}`}>{e.listing.title}</Link>{' '}
                <span className={`kind kind--${e.listing.kind}`}>{t(`kind.${e.listing.kind}`)}</span>
              </h2>
              <p className="muted">
                {t('access.granted', { at: formatDate(e.granted_at) })}
                {e.expires_at && ` · ${t('access.expires', { at: formatDate(e.expires_at) })}`}
              </p>
              {e.artifacts.length > 0 && (
                <ul className="plain-list">
                  {e.artifacts.map((a) => (
                    <li key={a.id ?? a.name}>
                      {a.id ? (
                        <a href={marketplace().downloadUrl(a.id)} download={a.name}>
                          {t('access.download', { name: a.name })}
                        </a>
                      ) : (
                        a.name
                      )}{' '}
                      <span className="muted">
                        {formatBytes(a.size_bytes)} · sha256 <span className="mono hash">{a.sha256}</span>
                      </span>
                    </li>
                  ))}
                </ul>
              )}
            </li>
          ))}
        </ul>
      </AsyncBlock>
      <LoadMore hasMore={list.hasMore} loading={list.loading} onClick={list.loadMore} />
    </section>
  );
}

function Orders() {
  const { t } = useTranslation();
  useDocumentTitle(t('access.orders_title'));
  const list = usePaged((cursor) => marketplace().orders(cursor), []);
  return (
    <section className="page">
      <PageHeader title={t('access.orders_title')} />
      <AsyncBlock loading={list.loading} error={list.error} empty={!list.loading && list.items.length === 0} emptyText={t('access.no_orders')} onRetry={list.reload}>
        <div className="table-scroll">
          <table>
            <thead>
              <tr>
                <th scope="col">{t('access.order')}</th>
                <th scope="col">{t('vendor.listing')}</th>
                <th scope="col">{t('access.plan')}</th>
                <th scope="col" className="num">{t('access.quantity')}</th>
                <th scope="col" className="num">{t('access.total')}</th>
                <th scope="col">{t('vendor.state')}</th>
                <th scope="col">{t('staff.when')}</th>
              </tr>
            </thead>
            <tbody>
              {list.items.map((o) => (
                <tr key={o.id}>
                  <td className="mono">{o.id}</td>
                  <td>
                    <Link to={`/listings/${encodeURIComponent(o.listing_id)}`}>{o.listing_title ?? o.listing_id}</Link>
                  </td>
                  <td>{o.plan_name ?? o.plan_id}</td>
                  <td className="num">{o.quantity}</td>
                  <td className="num money">{o.total_display}</td>
                  <td>
                    <StateBadge state={o.state} />
                  </td>
                  <td>{formatDateTime(o.created_at)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </AsyncBlock>
      <LoadMore hasMore={list.hasMore} loading={list.loading} onClick={list.loadMore} />
    </section>
  );
}
