// A pool's site agents (the vendor's own GPU hosts running sandboxes), their one-time enrolment tokens, and the
// node actions of a pool's managers (drain, return to service). The agents' routes answer the pool's vendor admins
// and staff only: the pools page shows these parts to them alone.

import { useEffect, useRef, useState, type FormEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { testbed } from '../api/endpoints';
import { isApiError } from '../api/problem';
import type { AgentToken, NewAgentToken, Page, Pool, PoolNode, SiteAgent } from '../api/types';
import type { Session } from '../auth/session';
import { AsyncBlock, ConfirmButton, CopyField, DataTable, Empty, ProblemAlert, StateBadge, TextField } from '../components/ui';
import { formatDateTime, formatRelative } from '../lib/format';
import { useAsync, useInterval, type Async } from '../lib/hooks';

/** Backends whose sandboxes run in site agents (the testbed refuses enrolment tokens for the others). */
const AGENT_BACKENDS = ['local', 'slurm', 'kubernetes'];

export function agentRun(backend: string): boolean {
  return AGENT_BACKENDS.includes(backend);
}

/** managesPool: the pool's vendor admins and staff may see its agents and tokens, and drain its nodes. */
export function managesPool(s: Pick<Session, 'isStaff' | 'isOrgAdmin' | 'activeOrg'>, pool: Pool): boolean {
  return s.isStaff || (s.isOrgAdmin && pool.vendor_org_id === s.activeOrg?.id);
}

/** How often a manager's pool card refreshes its nodes and agents (agents send a heartbeat every 5 s). */
export const POOL_REFRESH_MS = 10_000;

/** usePoolAgents reads the pool's agents when enabled (an empty list otherwise); refresh() re-reads them in place. */
export function usePoolAgents(poolId: string, enabled: boolean): Async<Page<SiteAgent>> & { refresh: () => void } {
  const agents = useAsync<Page<SiteAgent>>(() => (enabled ? testbed().agents(poolId) : Promise.resolve({ items: [] })), [poolId, enabled]);
  const refresh = () => {
    if (enabled) testbed().agents(poolId).then(agents.setData, () => undefined);
  };
  return { ...agents, refresh };
}

/** Heartbeat shows a time relative to now, the exact time in its title. */
function Ago({ iso, now }: { iso: string | null; now: number }) {
  const { t } = useTranslation();
  if (!iso) return <span className="muted">{t('agents.never')}</span>;
  return (
    <time dateTime={iso} title={formatDateTime(iso)}>
      {formatRelative(iso, now, true)}
    </time>
  );
}

/** NodeAgent names the agent that registered a node, or says it is one of the platform host's own. */
export function NodeAgent({ node, agents }: { node: PoolNode; agents: SiteAgent[] }) {
  const { t } = useTranslation();
  if (!node.agent_id) return <span className="muted">{t('agents.platform_host')}</span>;
  const a = agents.find((x) => x.id === node.agent_id);
  return a ? <span>{a.name}</span> : <span className="mono small">{node.agent_id}</span>;
}

/** NodeActions drains a ready node (running sandboxes continue, no new ones) or returns a draining one to service. */
export function NodeActions({ pool, node, onDone }: { pool: Pool; node: PoolNode; onDone: () => void }) {
  const { t } = useTranslation();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const run = async (fn: () => Promise<unknown>) => {
    setError(undefined);
    setBusy(true);
    try {
      await fn();
      onDone();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <ProblemAlert error={error} />
      {node.health === 'ready' && (
        <button type="button" className="button" disabled={busy} aria-label={t('agents.drain_named', { node: node.name })} onClick={() => void run(() => testbed().drainNode(pool.id, node.id))}>
          {t('agents.drain')}
        </button>
      )}
      {node.health === 'draining' && (
        <button
          type="button"
          className="button"
          disabled={busy}
          aria-label={t('agents.undrain_named', { node: node.name })}
          onClick={() => void run(() => testbed().setNodeHealth(pool.id, node.id, 'ready'))}
        >
          {t('agents.undrain')}
        </button>
      )}
    </>
  );
}

/**
 * SiteAgents is a pool's "Site agents" section: its agents (state, version, last heartbeat, nodes with their GPUs,
 * the problem an agent reports, Revoke after a confirmation), or what an agent is and how to attach a server; then
 * the enrolment tokens. nodes is the pool's node list (the agents' answer does not count GPUs per node).
 */
export function SiteAgents({ pool, agents, nodes, onChange }: { pool: Pool; agents: Async<Page<SiteAgent>>; nodes: PoolNode[]; onChange: () => void }) {
  const { t } = useTranslation();
  // Relative times are computed at each render (new data) and at least every refresh period.
  const [, setTick] = useState(0);
  useInterval(() => setTick((x) => x + 1), POOL_REFRESH_MS);
  const now = Date.now();
  const [error, setError] = useState<unknown>();
  const list = agents.data?.items ?? [];
  const gpus = new Map(nodes.map((n) => [n.id, n.devices.length]));
  const headingId = `agents-${pool.id}`;
  if (!agentRun(pool.backend)) {
    return (
      <section aria-labelledby={headingId}>
        <h3 id={headingId}>{t('agents.title')}</h3>
        <p className="muted">{t('agents.not_agent_run', { backend: pool.backend })}</p>
      </section>
    );
  }
  const revoke = async (a: SiteAgent) => {
    setError(undefined);
    try {
      await testbed().revokeAgent(pool.id, a.id);
      onChange();
    } catch (e) {
      setError(e);
    }
  };
  return (
    <section aria-labelledby={headingId} className="agents">
      <h3 id={headingId}>{t('agents.title')}</h3>
      <ProblemAlert error={error} />
      <AsyncBlock loading={agents.loading && !agents.data} error={agents.error} onRetry={agents.reload}>
        {list.length === 0 ? (
          <AttachHelp />
        ) : (
          <DataTable caption={t('agents.of_pool', { pool: pool.name })} captionHidden
            columns={[t('agents.agent'), t('vendor.state'), t('agents.version'), t('agents.last_heartbeat'), t('agents.nodes'), { label: t('common.actions'), hidden: true }]}
          >
            {list.map((a) => (
              <tr key={a.id} data-agent={a.name}>
                <td>
                  <strong>{a.name}</strong>
                  {a.backend && <span className="muted small"> · {a.backend}</span>}
                  {a.problem && <p className="agent__problem">{t('agents.problem', { problem: a.problem })}</p>}
                </td>
                <td>
                  <StateBadge state={a.state} />
                </td>
                <td className="mono">{a.version || '—'}</td>
                <td>
                  <Ago iso={a.last_heartbeat_at ?? null} now={now} />
                </td>
                <td>
                  {a.nodes.length === 0 ? (
                    <span className="muted">{t('agents.no_nodes')}</span>
                  ) : (
                    <ul className="devices">
                      {a.nodes.map((n) => (
                        <li key={n.id}>
                          <span className="mono">{n.name}</span> <StateBadge state={n.health} />{' '}
                          <span className="muted small">{t('agents.gpus', { count: gpus.get(n.id) ?? 0 })}</span>
                        </li>
                      ))}
                    </ul>
                  )}
                  {a.nodes.length > 1 && <p className="muted small">{t('agents.gpus_total', { count: a.devices })}</p>}
                </td>
                <td className="actions">
                  {a.state !== 'revoked' && (
                    <ConfirmButton
                      label={t('agents.revoke')}
                      accessibleLabel={t('agents.revoke_named', { name: a.name })}
                      question={t('agents.revoke_question', { name: a.name })}
                      confirmLabel={t('agents.revoke_confirm')}
                      onConfirm={() => revoke(a)}
                    />
                  )}
                </td>
              </tr>
            ))}
          </DataTable>
        )}
      </AsyncBlock>
      <AgentTokens pool={pool} agents={list} agentCount={list.length} />
    </section>
  );
}

/** AttachHelp is the empty state: what a site agent is, and attaching a GPU server in short. */
function AttachHelp() {
  const { t } = useTranslation();
  return (
    <div className="attach-help">
      <Empty>{t('agents.none')}</Empty>
      <p>{t('agents.what')}</p>
      <p>{t('agents.steps_title')}</p>
      <ol>
        <li>
          {t('agents.step_prepare')} <code>tamarack doctor</code>
        </li>
        <li>{t('agents.step_token')}</li>
        <li>
          {t('agents.step_run')} <code>tamarack agent run --data /var/lib/tamarack-agent</code>
        </li>
        <li>{t('agents.step_firewall')}</li>
      </ol>
      <p className="muted small">
        {t('agents.guide')} <cite lang="en">{t('agents.guide_title')}</cite> (<code>docs/sandbox-backends.md</code>)
      </p>
    </div>
  );
}

/**
 * AgentTokens creates one-time enrolment tokens (shown once, with the command to run on the server and copy
 * buttons) and lists them with their state; usable ones can be revoked. The list is read again when the number
 * of agents changes (a token was just used).
 */
function AgentTokens({ pool, agents, agentCount }: { pool: Pool; agents: SiteAgent[]; agentCount: number }) {
  const { t } = useTranslation();
  const tokens = useAsync(() => testbed().agentTokens(pool.id), [pool.id]);
  const [note, setNote] = useState('');
  const [created, setCreated] = useState<NewAgentToken | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>();
  const fields = isApiError(error) ? error.fieldErrors() : {};
  const seen = useRef(agentCount);
  const reloadTokens = tokens.reload;
  useEffect(() => {
    if (seen.current !== agentCount) reloadTokens();
    seen.current = agentCount;
  }, [agentCount, reloadTokens]);
  const create = async (e: FormEvent) => {
    e.preventDefault();
    setError(undefined);
    setBusy(true);
    try {
      setCreated(await testbed().createAgentToken(pool.id, note.trim()));
      setNote('');
      tokens.reload();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const revoke = async (tok: AgentToken) => {
    setError(undefined);
    try {
      await testbed().revokeAgentToken(pool.id, tok.id);
      if (created?.id === tok.id) setCreated(null);
      tokens.reload();
    } catch (err) {
      setError(err);
    }
  };
  const agentName = (id?: string) => (id ? (agents.find((a) => a.id === id)?.name ?? id) : '—');
  const items = tokens.data?.items ?? [];
  const headingId = `tokens-${pool.id}`;
  return (
    <section aria-labelledby={headingId}>
      <h4 id={headingId}>{t('agents.tokens_title')}</h4>
      {created && (
        <div className="alert alert--success" role="status">
          <p className="alert__title">{t('agents.created_once')}</p>
          <p>{t('agents.created_valid', { at: formatDateTime(created.expires_at) })}</p>
          <CopyField label={t('agents.token')} value={created.token} copyLabel={t('agents.copy_token')} />
          <CopyField label={t('agents.command')} value={created.command} copyLabel={t('agents.copy_command')} multiline />
          <button type="button" className="button" onClick={() => setCreated(null)}>
            {t('agents.copied_done')}
          </button>
        </div>
      )}
      <form className="inline-form" aria-label={t('agents.new_token')} onSubmit={(e) => void create(e)}>
        <ProblemAlert error={error} listFields={(f) => f !== 'note'} />
        <TextField label={t('agents.note')} hint={t('agents.note_hint')} value={note} maxLength={200} onChange={(e) => setNote(e.target.value)} error={fields.note} />
        <button type="submit" className="button button--primary" disabled={busy} aria-busy={busy}>
          {t('agents.create_token')}
        </button>
      </form>
      <AsyncBlock loading={tokens.loading && !tokens.data} error={tokens.error} empty={!tokens.loading && items.length === 0} emptyText={t('agents.no_tokens')} onRetry={tokens.reload}>
        <DataTable caption={t('agents.tokens_of', { pool: pool.name })} captionHidden
          columns={[t('agents.note_column'), t('vendor.state'), t('agents.created'), t('agents.expires'), t('agents.used_by'), { label: t('common.actions'), hidden: true }]}
        >
          {items.map((tok) => (
            <tr key={tok.id} data-token={tok.id}>
              <td>{tok.note || <span className="muted">—</span>}</td>
              <td>
                <StateBadge state={tok.state} />
              </td>
              <td>{formatDateTime(tok.created_at)}</td>
              <td>{formatDateTime(tok.expires_at)}</td>
              <td>{tok.used_at ? `${agentName(tok.agent_id)} · ${formatDateTime(tok.used_at)}` : '—'}</td>
              <td className="actions">
                {tok.state === 'usable' && (
                  <button
                    type="button"
                    className="button button--danger"
                    aria-label={tok.note ? t('agents.revoke_token_named', { note: tok.note }) : t('agents.revoke_token_at', { at: formatDateTime(tok.created_at) })}
                    onClick={() => void revoke(tok)}
                  >
                    {t('agents.revoke')}
                  </button>
                )}
              </td>
            </tr>
          ))}
        </DataTable>
      </AsyncBlock>
    </section>
  );
}
