import { useState, type FormEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { Link } from 'react-router-dom';
import { billing, marketplace, testbed } from '../api/endpoints';
import { isApiError } from '../api/problem';
import type { AccessRequest, Pool } from '../api/types';
import { useSession } from '../auth/session';
import { AsyncBlock, LoadMore, Notice, PageHeader, ProblemAlert, StateBadge, TextAreaField, TextField, SelectField } from '../components/ui';
import { formatDate, formatDateTime } from '../lib/format';
import { useAsync, useDocumentTitle, usePaged } from '../lib/hooks';

export default function Vendor({ page }: { page: 'listings' | 'access' | 'pools' | 'earnings' }) {
  switch (page) {
    case 'listings':
      return <MyListings />;
    case 'access':
      return <AccessInbox />;
    case 'pools':
      return <Pools />;
    case 'earnings':
      return <Earnings />;
  }
}

function MyListings() {
  const { t } = useTranslation();
  useDocumentTitle(t('vendor.listings_title'));
  const s = useSession();
  const orgId = s.activeOrg?.id ?? '';
  const list = usePaged((cursor) => marketplace().myListings(orgId, cursor), [orgId]);
  const [error, setError] = useState<unknown>();
  const act = async (fn: () => Promise<unknown>) => {
    setError(undefined);
    try {
      await fn();
      list.reload();
    } catch (e) {
      setError(e);
    }
  };
  return (
    <section className="page">
      <PageHeader title={t('vendor.listings_title')}>
        <Link className="button button--primary" to="/vendor/listings/new">
          {t('vendor.new_listing')}
        </Link>
      </PageHeader>
      <ProblemAlert error={error} />
      <AsyncBlock loading={list.loading} error={list.error} empty={!list.loading && list.items.length === 0} emptyText={t('vendor.no_listings')} onRetry={list.reload}>
        <div className="table-scroll">
          <table>
            <thead>
              <tr>
                <th scope="col">{t('vendor.listing')}</th>
                <th scope="col">{t('vendor.kind')}</th>
                <th scope="col">{t('vendor.state')}</th>
                <th scope="col">{t('vendor.reviewer_comment')}</th>
                <th scope="col">{t('vendor.updated')}</th>
                <th scope="col">{t('common.actions')}</th>
              </tr>
            </thead>
            <tbody>
              {list.items.map((l) => {
                const cur = l.current_version ?? l.versions?.[l.versions.length - 1];
                const state = cur?.state ?? l.state;
                const editable = state === 'draft' || state === 'changes_requested';
                return (
                  <tr key={l.id}>
                    <td>
                      <Link to={`/listings/${encodeURIComponent(l.id)}`}>{l.title}</Link>
                      {cur && <span className="muted"> v{cur.version}</span>}
                    </td>
                    <td>{t(`kind.${l.kind}`)}</td>
                    <td>
                      <StateBadge state={state} />
                    </td>
                    <td>{cur?.review_comment ?? l.suspended_reason ?? '—'}</td>
                    <td>{formatDate(l.updated_at ?? cur?.created_at)}</td>
                    <td className="actions">
                      <Link className="button" to={`/vendor/listings/${encodeURIComponent(l.id)}/edit`}>
                        {editable ? t('common.edit') : t('vendor.new_version')}
                      </Link>
                      {editable && (
                        <button type="button" className="button button--primary" onClick={() => void act(() => marketplace().submit(l.id))}>
                          {t('vendor.submit')}
                        </button>
                      )}
                      {l.state === 'published' && s.isOrgAdmin && (
                        <button type="button" className="button button--danger" onClick={() => void act(() => marketplace().retire(l.id))}>
                          {t('vendor.retire')}
                        </button>
                      )}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      </AsyncBlock>
      <LoadMore hasMore={list.hasMore} loading={list.loading} onClick={list.loadMore} />
    </section>
  );
}

function AccessInbox() {
  const { t } = useTranslation();
  useDocumentTitle(t('vendor.access_title'));
  const [state, setState] = useState('pending');
  const list = usePaged((cursor) => marketplace().accessRequests({ state, cursor }), [state]);
  return (
    <section className="page">
      <PageHeader title={t('vendor.access_title')} />
      <SelectField label={t('vendor.show')} value={state} onChange={(e) => setState(e.target.value)}>
        {['pending', 'approved', 'denied', ''].map((s) => (
          <option key={s} value={s}>
            {s ? t(`state.${s}`) : t('common.all')}
          </option>
        ))}
      </SelectField>
      <AsyncBlock loading={list.loading} error={list.error} empty={!list.loading && list.items.length === 0} emptyText={t('vendor.no_requests')}>
        <ul className="plain-list stack">
          {list.items.map((r) => (
            <AccessRequestRow key={r.id} req={r} onDone={list.reload} />
          ))}
        </ul>
      </AsyncBlock>
      <LoadMore hasMore={list.hasMore} loading={list.loading} onClick={list.loadMore} />
    </section>
  );
}

function AccessRequestRow({ req, onDone }: { req: AccessRequest; onDone: () => void }) {
  const { t } = useTranslation();
  const [comment, setComment] = useState('');
  const [error, setError] = useState<unknown>();
  const decide = async (d: 'approve' | 'deny') => {
    setError(undefined);
    try {
      await marketplace().decideAccess(req.id, d, comment);
      onDone();
    } catch (e) {
      setError(e);
    }
  };
  return (
    <li className="card">
      <p>
        <strong>{req.requester.name}</strong> → <Link to={`/listings/${encodeURIComponent(req.listing_id)}`}>{req.listing_title ?? req.listing_id}</Link>{' '}
        <StateBadge state={req.state} /> <span className="muted">{formatDateTime(req.created_at)}</span>
      </p>
      <blockquote>{req.purpose}</blockquote>
      {req.state === 'pending' ? (
        <>
          <ProblemAlert error={error} />
          <TextAreaField label={t('vendor.comment')} value={comment} onChange={(e) => setComment(e.target.value)} rows={2} />
          <div className="actions">
            <button type="button" className="button button--primary" onClick={() => void decide('approve')}>
              {t('vendor.approve')}
            </button>
            <button type="button" className="button button--danger" onClick={() => void decide('deny')}>
              {t('vendor.deny')}
            </button>
          </div>
        </>
      ) : (
        req.comment && <p className="muted">{req.comment}</p>
      )}
    </li>
  );
}

function Pools() {
  const { t } = useTranslation();
  useDocumentTitle(t('vendor.pools_title'));
  const s = useSession();
  const pools = useAsync(() => testbed().pools(), []);
  const mine = (pools.data?.items ?? []).filter((p) => !p.owner_organization_id || p.owner_organization_id === s.activeOrg?.id);
  const [form, setForm] = useState({ name: '', backend: 'local', region: '' });
  const [error, setError] = useState<unknown>();
  const fields = isApiError(error) ? error.fieldErrors() : {};
  const create = async (e: FormEvent) => {
    e.preventDefault();
    setError(undefined);
    try {
      await testbed().createPool(form);
      setForm({ name: '', backend: 'local', region: '' });
      pools.reload();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <section className="page">
      <PageHeader title={t('vendor.pools_title')} />
      <AsyncBlock loading={pools.loading} error={pools.error} empty={!pools.loading && mine.length === 0} emptyText={t('vendor.no_pools')} onRetry={pools.reload}>
        {mine.map((p) => (
          <PoolCard key={p.id} pool={p} onChange={pools.reload} />
        ))}
      </AsyncBlock>
      {s.isOrgAdmin && (
        <form className="inline-form" onSubmit={(e) => void create(e)}>
          <h2>{t('vendor.new_pool')}</h2>
          <ProblemAlert error={error} />
          <TextField label={t('vendor.pool_name')} value={form.name} onChange={(e) => setForm({ ...form, name: e.target.value })} error={fields.name} required />
          <SelectField label={t('vendor.backend')} value={form.backend} onChange={(e) => setForm({ ...form, backend: e.target.value })} error={fields.backend}>
            {['local', 'slurm', 'kubernetes'].map((b) => (
              <option key={b} value={b}>
                {b}
              </option>
            ))}
          </SelectField>
          <TextField label={t('vendor.region')} value={form.region} onChange={(e) => setForm({ ...form, region: e.target.value })} error={fields.region} required />
          <button type="submit" className="button button--primary">
            {t('vendor.create_pool')}
          </button>
        </form>
      )}
    </section>
  );
}

function PoolCard({ pool, onChange }: { pool: Pool; onChange: () => void }) {
  const { t } = useTranslation();
  const s = useSession();
  const [node, setNode] = useState({ hostname: '', gpu_model: '', gpu_count: '1' });
  const [error, setError] = useState<unknown>();
  const [nodeToken, setNodeToken] = useState<string | null>(null);
  const fields = isApiError(error) ? error.fieldErrors() : {};
  const add = async (e: FormEvent) => {
    e.preventDefault();
    setError(undefined);
    try {
      const res = await testbed().addNode(pool.id, { ...node, gpu_count: Number(node.gpu_count) });
      setNodeToken(res.node_token ?? null);
      setNode({ hostname: '', gpu_model: '', gpu_count: '1' });
      onChange();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <article className="card pool">
      <h2>
        {pool.name} <span className="muted">· {pool.backend} · {pool.region}</span>
      </h2>
      <p>
        {pool.gpu_models.map((g) => (
          <span key={g.gpu_model} className="tag">
            {t('vendor.gpu_free_of', { gpu: g.gpu_model, free: g.free, total: g.total })}
          </span>
        ))}
      </p>
      {(pool.nodes ?? []).length > 0 && (
        <div className="table-scroll">
          <table>
            <caption className="visually-hidden">{t('vendor.nodes_of', { pool: pool.name })}</caption>
            <thead>
              <tr>
                <th scope="col">{t('vendor.node')}</th>
                <th scope="col">{t('vendor.state')}</th>
                <th scope="col">{t('vendor.last_seen')}</th>
                <th scope="col">{t('vendor.devices')}</th>
              </tr>
            </thead>
            <tbody>
              {pool.nodes!.map((n) => (
                <tr key={n.id}>
                  <td className="mono">{n.hostname}</td>
                  <td>
                    <StateBadge state={n.state} />
                  </td>
                  <td>{formatDateTime(n.last_seen_at)}</td>
                  <td>
                    <ul className="devices">
                      {n.devices.map((d) => (
                        <li key={d.index} className={`device device--${d.health}`}>
                          <span>
                            #{d.index} {d.gpu_model}
                          </span>{' '}
                          <span>{t(`health.${d.health}`, { defaultValue: d.health })}</span>
                          {d.temperature_c != null && <span> · {d.temperature_c} °C</span>}
                          {d.utilization_percent != null && <span> · {d.utilization_percent} %</span>}
                        </li>
                      ))}
                    </ul>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {s.isOrgAdmin && (
        <form className="inline-form" onSubmit={(e) => void add(e)}>
          <h3>{t('vendor.add_node')}</h3>
          {nodeToken && (
            <Notice tone="success">
              {t('vendor.node_token')} <code className="mono">{nodeToken}</code>
            </Notice>
          )}
          <ProblemAlert error={error} />
          <TextField label={t('vendor.hostname')} value={node.hostname} onChange={(e) => setNode({ ...node, hostname: e.target.value })} error={fields.hostname} required />
          <TextField label={t('listing.gpu_model')} value={node.gpu_model} onChange={(e) => setNode({ ...node, gpu_model: e.target.value })} error={fields.gpu_model} required />
          <TextField label={t('vendor.gpu_count')} type="number" min={1} value={node.gpu_count} onChange={(e) => setNode({ ...node, gpu_count: e.target.value })} error={fields.gpu_count} />
          <button type="submit" className="button">
            {t('vendor.add_node')}
          </button>
        </form>
      )}
    </article>
  );
}

function Earnings() {
  const { t } = useTranslation();
  useDocumentTitle(t('vendor.earnings_title'));
  const list = usePaged((cursor) => billing().payouts(cursor), []);
  return (
    <section className="page">
      <PageHeader title={t('vendor.earnings_title')} />
      <AsyncBlock loading={list.loading} error={list.error} empty={!list.loading && list.items.length === 0} emptyText={t('vendor.no_earnings')}>
        <div className="table-scroll">
          <table>
            <thead>
              <tr>
                <th scope="col">{t('vendor.period')}</th>
                <th scope="col">{t('vendor.source')}</th>
                <th scope="col" className="num">{t('vendor.gross')}</th>
                <th scope="col" className="num">{t('vendor.fee')}</th>
                <th scope="col" className="num">{t('vendor.net')}</th>
                <th scope="col">{t('vendor.state')}</th>
              </tr>
            </thead>
            <tbody>
              {list.items.map((p) => (
                <tr key={p.id}>
                  <td>{p.period}</td>
                  <td>{p.listing_title ?? t(`vendor.source_${p.source}`, { defaultValue: p.source })}</td>
                  <td className="num money">{p.gross_display}</td>
                  <td className="num money">{p.fee_display}</td>
                  <td className="num money">{p.net_display}</td>
                  <td>
                    <StateBadge state={p.state} />
                  </td>
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
