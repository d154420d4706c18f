// The pools page's site agents, enrolment tokens and node actions, and the sandboxes' "Unreachable" badge, on the
// testbed's real shapes (testbed/http_agents.go, GET /api/openapi.json).

import { act, render, screen, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { MemoryRouter } from 'react-router-dom';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { api } from '../api/client';
import { AppRoutes } from '../App';
import { SessionProvider } from '../auth/session';
import i18n, { setupI18n } from '../i18n';
import { fakeFetch, json, problem, type Handler } from '../test/fakeFetch';

setupI18n('en');

beforeEach(async () => {
  await act(() => i18n.changeLanguage('en'));
});
afterEach(() => {
  vi.unstubAllGlobals();
  api.tokens.clear();
});

function renderPage(path: string, routes: Record<string, Handler>) {
  const f = fakeFetch(routes);
  vi.stubGlobal('fetch', f.fetch);
  api.tokens.set('a1', 'r1');
  render(
    <SessionProvider client={api}>
      <MemoryRouter initialEntries={[path]}>
        <AppRoutes />
      </MemoryRouter>
    </SessionProvider>,
  );
  return f;
}

const me = (role: string) => ({
  user: { id: 'u1', email: 'v@b.ca', name: 'Val', is_staff: false, created_at: '2026-11-22T00:00:00Z' },
  memberships: [{ organization: { id: 'o1', name: 'Northern GPU Co.', kind: 'vendor', verified: true }, role }],
  active_organization_id: 'o1',
});

const ago = (s: number) => new Date(Date.now() - s * 1000).toISOString();
const P = '/api/v1/testbed/pools/pool-1';

const pool = (backend = 'local') => ({
  id: 'pool-1', vendor_org_id: 'o1', name: 'Montréal', region: 'ca-montreal', backend, settings: {}, nodes: 2,
  gpus: [{ gpu_model: 'h100-80gb', total: 10, free_now: 10 }], created_at: '2026-11-22T00:00:00Z', updated_at: '2026-11-22T00:00:00Z',
});

const device = (node: string, i: number) => ({ id: `dev-${node}-${i}`, index: i, uuid: `GPU-${node}-${i}`, gpu_model: 'h100-80gb', memory_mib: 81920, mig_profiles: [], declared: true });

const hostNode = { id: 'node-h', pool_id: 'pool-1', name: 'mtl-gpu-01', health: 'ready', cpu_millis: 128000, memory_bytes: 1 << 30, last_heartbeat_at: ago(3), devices: [0, 1, 2, 3, 4, 5, 6, 7].map((i) => device('h', i)) };

function agentNode(health: string) {
  return { id: 'node-a', pool_id: 'pool-1', name: 'rack-gpu-02', health, cpu_millis: 2000, memory_bytes: 1 << 30, last_heartbeat_at: ago(4), agent_id: 'agent-1', devices: [device('a', 0), device('a', 1)] };
}

function agent(state: string, health: string, extra: Record<string, unknown> = {}) {
  return {
    id: 'agent-1', pool_id: 'pool-1', name: 'gpu-02.example', version: '1.4.0', backend: 'local', created_at: '2026-11-22T00:00:00Z',
    last_heartbeat_at: ago(5), revoked_at: state === 'revoked' ? ago(1) : null, state,
    nodes: [{ ...agentNode(health), devices: [] }], devices: 2, ...extra,
  };
}

/** A stateful fake of the pool's routes: drains, returns to service and revocations change what is read next. */
function poolRoutes(opts: { agents?: boolean; problem?: string } = {}) {
  let health = 'ready';
  let state = 'connected';
  const tokens: Record<string, unknown>[] = [];
  const routes: Record<string, Handler> = {
    'GET /api/v1/identity/me': () => json(200, me('owner')),
    'GET /api/v1/testbed/pools': () => json(200, { items: [pool()] }),
    [`GET ${P}`]: () => json(200, { ...pool(), node_list: opts.agents === false ? [hostNode] : [hostNode, agentNode(health)] }),
    [`GET ${P}/agents`]: () => json(200, { items: opts.agents === false ? [] : [agent(state, health, opts.problem ? { problem: opts.problem } : {})] }),
    [`POST ${P}/nodes/node-a/drain`]: () => {
      health = 'draining';
      return json(200, agentNode(health));
    },
    [`POST ${P}/nodes/node-a/health`]: (c) => {
      health = (c.body as { health: string }).health;
      return json(200, agentNode(health));
    },
    [`DELETE ${P}/agents/agent-1`]: () => {
      state = 'revoked';
      health = 'down';
      return json(200, { ...agent(state, health), nodes: [], devices: 0 });
    },
    [`GET ${P}/agent-tokens`]: () => json(200, { items: tokens }),
    [`POST ${P}/agent-tokens`]: (c) => {
      const tok = {
        id: `atok-${tokens.length + 1}`, pool_id: 'pool-1', note: (c.body as { note: string }).note, created_at: ago(0),
        expires_at: new Date(Date.now() + 86_400_000).toISOString(), used_at: null, revoked_at: null, state: 'usable',
      };
      tokens.unshift(tok);
      const secret = `tmk_enrol_${'ab'.repeat(24)}`;
      return json(201, { ...tok, token: secret, command: `tamarack agent enroll --url https://tamarack.example --token ${secret}` });
    },
  };
  return { routes, tokens };
}

describe('site agents on the pools page', () => {
  it('lists an agent: state, version, last heartbeat (relative, exact in the title), its node with GPUs, its problem', async () => {
    const { routes } = poolRoutes({ problem: 'runc not found: install it with apt-get install runc' });
    renderPage('/vendor/pools', routes);
    const table = await screen.findByRole('table', { name: 'Site agents of Montréal' }, { timeout: 8000 });
    const row = within(table).getByText('gpu-02.example').closest('tr')!;
    expect(within(row).getByText('Connected')).toHaveClass('badge--connected');
    expect(within(row).getByText('1.4.0')).toBeInTheDocument();
    const beat = within(row).getByText('5 seconds ago');
    expect(beat.tagName).toBe('TIME');
    expect(beat).toHaveAttribute('title', expect.stringMatching(/\d{4}/));
    expect(within(row).getByText('rack-gpu-02')).toBeInTheDocument();
    expect(within(row).getByText('2 GPUs')).toBeInTheDocument();
    expect(within(row).getByText('Problem reported: runc not found: install it with apt-get install runc')).toBeInTheDocument();

    // The nodes table names each node's agent; the platform host's own nodes say so.
    const nodes = screen.getByRole('table', { name: 'Nodes of Montréal' });
    expect(within(within(nodes).getByText('rack-gpu-02').closest('tr')!).getByText('gpu-02.example')).toBeInTheDocument();
    expect(within(within(nodes).getByText('mtl-gpu-01').closest('tr')!).getByText('Platform host')).toBeInTheDocument();
  });

  it('drains a node and returns it to service', async () => {
    const { routes } = poolRoutes();
    const f = renderPage('/vendor/pools', routes);
    const nodes = await screen.findByRole('table', { name: 'Nodes of Montréal' }, { timeout: 8000 });
    await userEvent.click(await within(nodes).findByRole('button', { name: 'Drain rack-gpu-02' }));
    const back = await within(nodes).findByRole('button', { name: 'Return rack-gpu-02 to service' });
    expect(within(within(nodes).getByText('rack-gpu-02').closest('tr')!).getByText('Draining')).toBeInTheDocument();
    await userEvent.click(back);
    await within(nodes).findByRole('button', { name: 'Drain rack-gpu-02' });
    expect(f.calls.filter((c) => c.method === 'POST').map((c) => [c.url.replace(/^.*\/nodes\//, ''), c.body])).toEqual([
      ['node-a/drain', undefined],
      ['node-a/health', { health: 'ready' }],
    ]);
  });

  it('revokes an agent only after a confirmation; Cancel sends nothing and gives the focus back', async () => {
    const { routes } = poolRoutes();
    const f = renderPage('/vendor/pools', routes);
    const table = await screen.findByRole('table', { name: 'Site agents of Montréal' }, { timeout: 8000 });
    const revoke = within(table).getByRole('button', { name: 'Revoke the agent gpu-02.example' });
    await userEvent.click(revoke);
    expect(within(table).getByText(/Revoke gpu-02.example\? Its credentials stop working at once/)).toBeInTheDocument();
    expect(within(table).getByRole('button', { name: 'Cancel' })).toHaveFocus();
    await userEvent.click(within(table).getByRole('button', { name: 'Cancel' }));
    expect(f.calls.some((c) => c.method === 'DELETE')).toBe(false);
    expect(within(table).getByRole('button', { name: 'Revoke the agent gpu-02.example' })).toHaveFocus();

    await userEvent.click(within(table).getByRole('button', { name: 'Revoke the agent gpu-02.example' }));
    await userEvent.click(within(table).getByRole('button', { name: 'Yes, revoke it' }));
    expect(await within(table).findByText('Revoked')).toBeInTheDocument();
    expect(f.calls.filter((c) => c.method === 'DELETE').map((c) => c.url)).toEqual([expect.stringMatching(/\/pools\/pool-1\/agents\/agent-1$/)]);
    expect(within(table).queryByRole('button', { name: /Revoke/ })).not.toBeInTheDocument();
    const nodes = screen.getByRole('table', { name: 'Nodes of Montréal' });
    expect(within(within(nodes).getByText('rack-gpu-02').closest('tr')!).getByText('Down')).toBeInTheDocument();
  });

  it('without agents explains them; a token is created, shown once with copy buttons, listed and revoked', async () => {
    const user = userEvent.setup();
    const { routes, tokens } = poolRoutes({ agents: false });
    routes[`DELETE ${P}/agent-tokens/atok-1`] = () => {
      tokens[0] = { ...tokens[0], state: 'revoked', revoked_at: ago(0) };
      return json(200, tokens[0]);
    };
    const f = renderPage('/vendor/pools', routes);
    expect(await screen.findByText('No site agent is attached to this pool yet.', {}, { timeout: 8000 })).toBeInTheDocument();
    expect(screen.getByText(/registers the server and its GPUs as a node of this pool/)).toBeInTheDocument();
    expect(screen.getByText('tamarack agent run --data /var/lib/tamarack-agent')).toBeInTheDocument();
    expect(screen.getByText('Attaching a GPU server, step by step')).toBeInTheDocument();
    expect(await screen.findByText('No enrolment token yet.')).toBeInTheDocument();

    const form = screen.getByRole('form', { name: 'Create an enrolment token' });
    await user.type(within(form).getByLabelText('Note (optional)'), 'gpu-02 in rack 4');
    await user.click(within(form).getByRole('button', { name: 'Create the token' }));
    expect(f.calls.find((c) => c.method === 'POST')?.body).toEqual({ note: 'gpu-02 in rack 4' });

    const shown = (await screen.findByText(/they are not shown again/)).closest('[role="status"]') as HTMLElement;
    expect(within(shown).getByText('Copy the token and the command now: they are not shown again.')).toBeInTheDocument();
    const command = within(shown).getByLabelText('Command to run on the server');
    expect(command).toHaveValue(`tamarack agent enroll --url https://tamarack.example --token tmk_enrol_${'ab'.repeat(24)}`);
    expect(within(shown).getByLabelText('Enrolment token')).toHaveValue(`tmk_enrol_${'ab'.repeat(24)}`);
    await user.click(within(shown).getByRole('button', { name: 'Copy the command' }));
    expect(await navigator.clipboard.readText()).toBe((command as HTMLTextAreaElement).value);
    expect(within(shown).getByText('Copied.')).toBeInTheDocument();

    const list = await screen.findByRole('table', { name: 'Enrolment tokens of Montréal' });
    const row = within(list).getByText('gpu-02 in rack 4').closest('tr')!;
    expect(within(row).getByText('Usable')).toBeInTheDocument();
    await user.click(within(row).getByRole('button', { name: 'Revoke the token “gpu-02 in rack 4”' }));
    expect(await within(row).findByText('Revoked')).toBeInTheDocument();
    expect(within(row).queryByRole('button')).not.toBeInTheDocument();
    // Revoking the token just shown also takes it off the screen.
    expect(screen.queryByLabelText('Command to run on the server')).not.toBeInTheDocument();
  });

  it("shows why the testbed refused a token, next to the form", async () => {
    const { routes } = poolRoutes({ agents: false });
    routes[`POST ${P}/agent-tokens`] = () => problem(422, 'pool_not_agent_run', 'Agents run sandboxes of local, slurm and kubernetes pools only.', { detail: 'pool "Montréal" uses the simulator backend' });
    renderPage('/vendor/pools', routes);
    await userEvent.click(await screen.findByRole('button', { name: 'Create the token' }, { timeout: 8000 }));
    expect(await screen.findByRole('alert')).toHaveTextContent('Agents run sandboxes of local, slurm and kubernetes pools only.pool "Montréal" uses the simulator backend');
  });

  it('a simulator pool says it has no agents and asks nothing about them', async () => {
    const { routes } = poolRoutes({ agents: false });
    routes['GET /api/v1/testbed/pools'] = () => json(200, { items: [pool('simulator')] });
    routes[`GET ${P}`] = () => json(200, { ...pool('simulator'), node_list: [hostNode] });
    const f = renderPage('/vendor/pools', routes);
    expect(await screen.findByText('Pools on the simulator backend have no site agents.', {}, { timeout: 8000 })).toBeInTheDocument();
    expect(screen.queryByRole('button', { name: 'Create the token' })).not.toBeInTheDocument();
    expect(f.calls.some((c) => /agent/.test(c.url))).toBe(false);
  });

  it('speaks French', async () => {
    await act(() => i18n.changeLanguage('fr'));
    const { routes } = poolRoutes();
    renderPage('/vendor/pools', routes);
    const table = await screen.findByRole('table', { name: 'Agents de site de Montréal' }, { timeout: 8000 });
    const row = within(table).getByText('gpu-02.example').closest('tr')!;
    expect(within(row).getByText('Connecté')).toBeInTheDocument();
    expect(within(row).getByText('il y a 5 secondes')).toBeInTheDocument();
    expect(within(row).getByText('2 GPU')).toBeInTheDocument();
    expect(screen.getByRole('button', { name: 'Mettre rack-gpu-02 en vidange' })).toBeInTheDocument();
    expect(screen.getByRole('form', { name: 'Créer un jeton d’inscription' })).toBeInTheDocument();
  });

  it("a vendor member who is not an admin sees the nodes and their agents' ids, without agents, tokens or drains", async () => {
    const { routes } = poolRoutes();
    routes['GET /api/v1/identity/me'] = () => json(200, me('member'));
    const f = renderPage('/vendor/pools', routes);
    const nodes = await screen.findByRole('table', { name: 'Nodes of Montréal' }, { timeout: 8000 });
    expect(await within(nodes).findByText('agent-1')).toBeInTheDocument();
    expect(within(nodes).queryByRole('button')).not.toBeInTheDocument();
    expect(screen.queryByRole('heading', { name: 'Site agents' })).not.toBeInTheDocument();
    expect(f.calls.some((c) => /agent/.test(c.url))).toBe(false);
  });
});

describe('unreachable sandboxes', () => {
  const smeMe = {
    user: { id: 'u2', email: 's@b.ca', name: 'Sam', is_staff: false, created_at: '2026-11-22T00:00:00Z' },
    memberships: [{ organization: { id: 'o2', name: 'Maple', kind: 'sme', verified: true }, role: 'owner' }],
    active_organization_id: 'o2',
  };
  const sandbox = (id: string, unreachable: string | null, state = 'running') => ({
    id, state, organization_id: 'o2', listing_id: 'lst_c', pool_id: 'pool-1', backend: 'local', node_id: 'node-a', agent_id: 'agent-1',
    unreachable_since: unreachable, gpu_model: 'h100-80gb', gpu_count: 1, template: 'shell', duration_minutes: 60, usage_millis: 60_000,
    charge_micro: 41_666, charge_display: '0.04', created_at: '2026-11-22T00:00:00Z', started_at: '2026-11-22T00:00:10Z',
    expires_at: new Date(Date.now() + 3_600_000).toISOString(), ports: [], proxy_urls: [], logs_url: '/x', terminal_url: '/y',
  });

  it('the list marks the sandbox whose agent does not answer, with the reason', async () => {
    renderPage('/sandboxes', {
      'GET /api/v1/identity/me': () => json(200, smeMe),
      'GET /api/v1/testbed/sandboxes': () => json(200, { items: [sandbox('sb-1', ago(120)), sandbox('sb-2', null)] }),
    });
    const gone = (await screen.findByRole('link', { name: 'sb-1' }, { timeout: 8000 })).closest('tr')!;
    expect(within(gone).getByText('Unreachable')).toHaveClass('badge--unreachable');
    expect(within(gone).getByText('Its agent does not answer; not metered until it does.')).toBeInTheDocument();
    const fine = screen.getByRole('link', { name: 'sb-2' }).closest('tr')!;
    expect(within(fine).queryByText('Unreachable')).not.toBeInTheDocument();
  });

  it('the sandbox page shows the badge beside its state and since when', async () => {
    // Stopping (the platform decided while its agent was away): the page has no terminal to open in jsdom.
    renderPage('/sandboxes/sb-1', {
      'GET /api/v1/identity/me': () => json(200, smeMe),
      'GET /api/v1/testbed/sandboxes/sb-1': () => json(200, sandbox('sb-1', '2026-11-22T00:30:00Z', 'stopping')),
    });
    const state = await screen.findByTestId('sandbox-state', {}, { timeout: 8000 });
    expect(within(state).getByText('Stopping')).toBeInTheDocument();
    expect(within(state).getByText('Unreachable')).toBeInTheDocument();
    expect(screen.getByText(/^Unreachable since .*2026/)).toBeInTheDocument();
    expect(screen.getByText('Its agent does not answer; not metered until it does.')).toBeInTheDocument();
  });
});
