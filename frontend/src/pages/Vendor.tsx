import { useState, type FormEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { Link, useNavigate } from 'react-router-dom';
import { billing, marketplace, testbed } from '../api/endpoints';
import { isApiError } from '../api/problem';
import type { AccessRequest, Pool } from '../api/types';
import { useSession } from '../auth/session';
import { AsyncBlock, DataTable, PagedBlock, PageHeader, ProblemAlert, SelectField, StateBadge, TextAreaField, TextField } from '../components/ui';
import { ConfirmDialogButton } from '../components/ConfirmDialog';
import { formatDate, formatDateTime } from '../lib/format';
import { formatMicro } from '../api/money';
import { useAsync, useDocumentTitle, useInterval, useListingTitles, usePaged } from '../lib/hooks';
import { listingTitle } from './Access';
import { agentRun, managesPool, NodeActions, NodeAgent, POOL_REFRESH_MS, SiteAgents, usePoolAgents } from './PoolAgents';
import { EarningsChart, UtilisationChart } from '../components/charts';
import i18n from '../i18n';

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
  const nav = useNavigate();
  const list = usePaged((cursor) => marketplace().myListings(cursor), []);
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState<string | null>(null);
  const act = async (id: string, fn: () => Promise<unknown>) => {
    setError(undefined);
    setBusy(id);
    try {
      await fn();
      list.reload();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(null);
    }
  };
  const newVersion = async (id: string) => {
    setError(undefined);
    try {
      await marketplace().newVersion(id);
      nav(`/vendor/listings/${encodeURIComponent(id)}/edit`);
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
      <PagedBlock list={list} emptyText={t('vendor.no_listings')}>
        <DataTable className="my-listings"
          columns={[
            t('vendor.listing'),
            t('vendor.kind'),
            t('vendor.state'),
            t('vendor.reviewer_comment'),
            t('vendor.updated'),
            t('common.actions'),
          ]}
        >
          {list.items.map((l) => {
            const cur = l.pending_version ?? l.published_version;
            const state = l.status === 'suspended' || l.status === 'retired' ? l.status : (cur?.state ?? l.status);
            const editable = state === 'draft' || state === 'changes_requested';
            return (
              <tr key={l.id} data-listing={l.slug}>
                <td>
                  <Link to={`/listings/${encodeURIComponent(l.id)}`}>{cur?.title ?? l.slug}</Link>
                  {cur && <span className="muted"> v{cur.version}</span>}
                </td>
                <td>{t(`kind.${l.kind}`)}</td>
                <td>
                  <StateBadge state={state} />
                </td>
                <td className="comment">{cur?.comment || l.status_reason || '—'}</td>
                <td>{formatDate(l.updated_at)}</td>
                <td className="actions">
                  {editable && (
                    <Link className="button" to={`/vendor/listings/${encodeURIComponent(l.id)}/edit`}>
                      {t('common.edit')}
                    </Link>
                  )}
                  {editable && (
                    <button
                      type="button"
                      className="button button--primary"
                      disabled={busy === l.id}
                      onClick={() => void act(l.id, () => marketplace().submit(l.id))}
                    >
                      {t('vendor.submit')}
                    </button>
                  )}
                  {!l.pending_version && l.status === 'published' && (
                    <button type="button" className="button" onClick={() => void newVersion(l.id)}>
                      {t('vendor.new_version')}
                    </button>
                  )}
                  {l.status === 'published' && s.isOrgAdmin && (
                    <ConfirmDialogButton
                      label={t('vendor.retire')}
                      title={t('vendor.retire_title')}
                      question={t('vendor.retire_question', { title: cur?.title ?? l.slug })}
                      accessibleLabel={t('vendor.retire_named', { title: cur?.title ?? l.slug })}
                      confirmLabel={t('vendor.retire_confirm')}
                      onConfirm={() => act(l.id, () => marketplace().retire(l.id))}
                    />
                  )}
                </td>
              </tr>
            );
          })}
        </DataTable>
      </PagedBlock>
    </section>
  );
}

function AccessInbox() {
  const { t } = useTranslation();
  useDocumentTitle(t('vendor.access_title'));
  const s = useSession();
  const [state, setState] = useState('pending');
  const list = usePaged((cursor) => marketplace().accessRequests(cursor), []);
  // The route answers requests made and received; the inbox shows the received ones.
  const items = list.items.filter((r) => r.vendor_org_id === s.activeOrg?.id && (!state || r.state === state));
  const titles = useListingTitles(items.map((r) => r.listing_id), listingTitle);
  return (
    <section className="page">
      <PageHeader title={t('vendor.access_title')} />
      <SelectField label={t('vendor.show')} value={state} onChange={(e) => setState(e.target.value)}>
        {['pending', 'approved', 'denied', ''].map((x) => (
          <option key={x} value={x}>
            {x ? t(`state.${x}`) : t('common.all')}
          </option>
        ))}
      </SelectField>
      <PagedBlock list={list} shown={items} emptyText={t('vendor.no_requests')}>
        <ul className="plain-list stack">
          {items.map((r) => (
            <AccessRequestRow key={r.id} req={r} title={titles[r.listing_id]} onDone={list.reload} />
          ))}
        </ul>
      </PagedBlock>
    </section>
  );
}

function AccessRequestRow({ req, title, onDone }: { req: AccessRequest; title?: string; onDone: () => void }) {
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
        {req.requester_org_name ? (
          <>
            <strong>{req.requester_org_name}</strong> <span className="muted mono small">{req.organization_id}</span>
          </>
        ) : (
          <span className="mono">{req.organization_id}</span>
        )}{' '}
        → <Link to={`/listings/${encodeURIComponent(req.listing_id)}`}>{title ?? req.listing_id}</Link>{' '}
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
  const mine = (pools.data?.items ?? []).filter((p) => s.isStaff || p.vendor_org_id === s.activeOrg?.id);
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
            {['local', 'simulator'].map((b) => (
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
  const detail = useAsync(() => testbed().pool(pool.id), [pool.id]);
  // Its managers see the site agents and act on nodes; the card follows heartbeats and drains without a reload.
  const manager = managesPool(s, pool);
  const agents = usePoolAgents(pool.id, manager && agentRun(pool.backend));
  const refresh = () => {
    testbed().pool(pool.id).then(detail.setData, () => undefined);
    agents.refresh();
  };
  useInterval(refresh, manager ? POOL_REFRESH_MS : null);
  const [node, setNode] = useState({ name: '', gpu_model: pool.gpus[0]?.gpu_model ?? 'h100-80gb', gpu_count: '1', cpus: '32', memory_gib: '256' });
  const [error, setError] = useState<unknown>();
  const fields = isApiError(error) ? error.fieldErrors() : {};
  const add = async (e: FormEvent) => {
    e.preventDefault();
    setError(undefined);
    try {
      const n = Math.max(1, Number(node.gpu_count) || 1);
      await testbed().addNode(pool.id, {
        name: node.name,
        // The node's CPUs and memory bound what its sandboxes may ask for (the API requires both).
        cpu_millis: Math.round((Number(node.cpus) || 0) * 1000),
        memory_bytes: Math.round(Number(node.memory_gib) || 0) * 1024 ** 3,
        devices: Array.from({ length: n }, (_, i) => ({ index: i, gpu_model: node.gpu_model })),
      });
      setNode({ ...node, name: '', gpu_count: '1' });
      detail.reload();
      onChange();
    } catch (err) {
      setError(err);
    }
  };
  const nodes = detail.data?.node_list ?? [];
  return (
    <article className="card pool">
      <h2>
        {pool.name} <span className="muted">· {pool.backend} · {pool.region}</span>
      </h2>
      <p>
        {(detail.data ?? pool).gpus.map((g) => (
          <span key={g.gpu_model} className="tag">
            {t('vendor.gpu_free_of', { gpu: g.gpu_model, free: g.free_now, total: g.total })}
          </span>
        ))}
      </p>
      {manager && nodes.length > 0 && <p className="muted small">{t('agents.drain_hint')}</p>}
      <AsyncBlock loading={detail.loading && !detail.data} error={detail.error} empty={detail.data ? nodes.length === 0 : undefined} emptyText={t('vendor.no_nodes')}>
        <DataTable caption={t('vendor.nodes_of', { pool: pool.name })} captionHidden
          columns={[
            t('vendor.node'),
            t('agents.agent'),
            t('vendor.state'),
            t('vendor.last_seen'),
            t('vendor.devices'),
            manager && { label: t('common.actions'), hidden: true },
          ]}
        >
          {nodes.map((n) => (
            <tr key={n.id} data-node={n.name}>
              <td className="mono">{n.name}</td>
              <td>
                <NodeAgent node={n} agents={agents.data?.items ?? []} />
              </td>
              <td>
                <StateBadge state={n.health} />
              </td>
              <td>{formatDateTime(n.last_heartbeat_at)}</td>
              <td>
                <ul className="devices">
                  {n.devices.map((d) => (
                    <li key={d.id} className={`device device--${n.health}`}>
                      <span>
                        #{d.index} {d.gpu_model}
                      </span>
                      {d.memory_mib ? <span> · {Math.round(d.memory_mib / 1024)} GiB</span> : null}
                      {d.declared && <span> · {t('vendor.declared')}</span>}
                    </li>
                  ))}
                </ul>
              </td>
              {manager && (
                <td className="actions">
                  <NodeActions pool={pool} node={n} onDone={refresh} />
                </td>
              )}
            </tr>
          ))}
        </DataTable>
      </AsyncBlock>
      {manager && (
        <SiteAgents
          pool={pool}
          agents={agents}
          nodes={nodes}
          onChange={() => {
            refresh();
            onChange();
          }}
        />
      )}
      {s.isOrgAdmin && (
        <form className="inline-form" onSubmit={(e) => void add(e)}>
          <h3>{t('vendor.add_node')}</h3>
          <ProblemAlert error={error} />
          <TextField label={t('vendor.hostname')} value={node.name} onChange={(e) => setNode({ ...node, name: e.target.value })} error={fields.name} required />
          <TextField label={t('listing.gpu_model')} value={node.gpu_model} onChange={(e) => setNode({ ...node, gpu_model: e.target.value })} error={fields['devices[0].gpu_model']} required />
          <TextField label={t('vendor.gpu_count')} type="number" min={1} value={node.gpu_count} onChange={(e) => setNode({ ...node, gpu_count: e.target.value })} error={fields.devices} />
          <TextField label={t('vendor.node_cpus')} type="number" min={1} value={node.cpus} onChange={(e) => setNode({ ...node, cpus: e.target.value })} error={fields.cpu_millis} required />
          <TextField label={t('vendor.node_memory_gib')} type="number" min={1} value={node.memory_gib} onChange={(e) => setNode({ ...node, memory_gib: e.target.value })} error={fields.memory_bytes} required />
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
  const s = useSession();
  useDocumentTitle(t('vendor.earnings_title'));
  const list = usePaged(() => billing().payouts(), []);
  return (
    <section className="page">
      <PageHeader title={t('vendor.earnings_title')} />
      {s.activeOrg && <EarningsChart orgId={s.activeOrg.id} />}
      <UtilisationChart />
      <AsyncBlock loading={list.loading} error={list.error} empty={!list.loading && list.items.length === 0} emptyText={t('vendor.no_earnings')} onRetry={list.reload}>
        <DataTable
          columns={[
            t('vendor.vendor'),
            { label: t('vendor.earned'), num: true },
            { label: t('vendor.paid_out'), num: true },
            { label: t('vendor.payable'), num: true },
          ]}
        >
          {list.items.map((p) => (
            <tr key={p.vendor_org_id}>
              <td>{p.name}</td>
              <td className="num money">{formatMicro(p.earned_micro, i18n.language)}</td>
              <td className="num money">{formatMicro(p.paid_out_micro, i18n.language)}</td>
              <td className="num money">{formatMicro(p.payable_micro, i18n.language)}</td>
            </tr>
          ))}
        </DataTable>
      </AsyncBlock>
    </section>
  );
}
