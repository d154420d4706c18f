// The security page's Sessions section against the identity service's shapes (services/identity/sessions.go):
// the list, ending one session (DELETE, then the list is read again), ending every other one, the empty state.

import { act, render, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { MemoryRouter } from 'react-router-dom';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { api } from '../api/client';
import type { UserSession } from '../api/types';
import { AppRoutes } from '../App';
import { SessionProvider } from '../auth/session';
import i18n, { setupI18n } from '../i18n';
import { formatDateTime } from '../lib/format';
import { fakeFetch, json, problem, type Handler } from '../test/fakeFetch';

setupI18n('en');

const smeMe = {
  user: { id: 'u1', email: 'sme@tamarack.demo', name: 'Sam SME', is_staff: false, created_at: '2026-11-22T00:00:00Z' },
  memberships: [{ organization: { id: 'o1', name: 'Demo SME', kind: 'sme', verified: true }, role: 'owner' }],
  active_organization_id: 'o1',
};
const mfaOff = { enabled: false, pending: false, recovery_codes_left: 0, required: false };

function session(id: string, device: string, current = false, extra: Partial<UserSession> = {}): UserSession {
  return {
    id,
    device,
    user_agent: `${device} UA`,
    ip: '203.0.113.7',
    sign_in_ip: '203.0.113.7',
    created_at: '2026-12-01T14:30:00Z',
    last_used_at: '2026-12-05T09:15:00Z',
    expires_at: '2026-12-31T14:30:00Z',
    current,
    ...extra,
  };
}

function renderSecurity(routes: Record<string, Handler>) {
  const f = fakeFetch({ 'GET /api/v1/identity/me': () => json(200, smeMe), 'GET /api/v1/identity/mfa': () => json(200, mfaOff), ...routes });
  vi.stubGlobal('fetch', f.fetch);
  api.tokens.set('a1', 'r1');
  render(
    <SessionProvider client={api}>
      <MemoryRouter initialEntries={['/account/security']}>
        <AppRoutes />
      </MemoryRouter>
    </SessionProvider>,
  );
  return f;
}

beforeEach(async () => {
  api.tokens.clear();
  await act(() => i18n.changeLanguage('en'));
});
afterEach(() => {
  vi.unstubAllGlobals();
  api.tokens.clear();
});

describe('sessions on the security page', () => {
  it('lists the sessions with their device, address and dates; the current one is marked and has no sign-out', async () => {
    renderSecurity({
      'GET /api/v1/identity/sessions': () =>
        json(200, { items: [session('s1', 'Chrome on Linux', true), session('s2', 'Firefox on Windows', false, { ip: '198.51.100.4' })] }),
    });
    await screen.findByRole('row', { name: /Chrome on Linux/ });
    const table = screen.getByRole('table', { name: 'Your signed-in sessions' });
    expect(within(table).getByRole('columnheader', { name: 'Device' })).toBeInTheDocument();
    expect(within(table).getByRole('columnheader', { name: 'Last active' })).toBeInTheDocument();
    const current = within(table).getByRole('row', { name: /Chrome on Linux/ });
    expect(within(current).getByText('This device')).toBeInTheDocument();
    expect(within(current).queryByRole('button')).not.toBeInTheDocument();
    const other = within(table).getByRole('row', { name: /Firefox on Windows/ });
    expect(within(other).getByText('198.51.100.4')).toBeInTheDocument();
    expect(within(other).getByText('Signed in from 203.0.113.7')).toBeInTheDocument();
    expect(within(other).getByText(formatDateTime('2026-12-01T14:30:00Z'))).toHaveAttribute('datetime', '2026-12-01T14:30:00Z');
    expect(within(other).getByText(formatDateTime('2026-12-05T09:15:00Z'))).toBeInTheDocument();
    expect(within(other).queryByText('This device')).not.toBeInTheDocument();
    expect(within(other).getByRole('button', { name: `Sign out Firefox on Windows, signed in ${formatDateTime('2026-12-01T14:30:00Z')}` })).toBeInTheDocument();
    expect(screen.getByRole('button', { name: 'Sign out everywhere else' })).toBeInTheDocument();
  });

  it('ends a session after the confirmation with DELETE, then reads the list again', async () => {
    let ended = false;
    const f = renderSecurity({
      'GET /api/v1/identity/sessions': () =>
        json(200, { items: ended ? [session('s1', 'Chrome on Linux', true)] : [session('s1', 'Chrome on Linux', true), session('s2', 'Firefox on Windows')] }),
      'DELETE /api/v1/identity/sessions/s2': () => {
        ended = true;
        return new Response(null, { status: 204 });
      },
    });
    const row = await screen.findByRole('row', { name: /Firefox on Windows/ });
    await userEvent.click(within(row).getByRole('button', { name: /^Sign out Firefox on Windows/ }));
    const confirm = within(row).getByRole('group', { name: /^Sign out Firefox on Windows/ });
    expect(confirm).toHaveTextContent('Sign out Firefox on Windows? It will have to sign in again.');
    expect(f.calls.filter((c) => c.method === 'DELETE')).toHaveLength(0);
    await userEvent.click(within(confirm).getByRole('button', { name: 'Sign out' }));
    expect(await screen.findByText('Signed out Firefox on Windows.')).toBeInTheDocument();
    await waitFor(() => expect(screen.queryByRole('row', { name: /Firefox on Windows/ })).not.toBeInTheDocument());
    expect(f.calls.filter((c) => c.method === 'DELETE').map((c) => c.url)).toEqual(['/api/v1/identity/sessions/s2']);
    expect(f.calls.filter((c) => c.method === 'GET' && c.url.includes('/identity/sessions'))).toHaveLength(2);
    expect(screen.queryByRole('button', { name: 'Sign out everywhere else' })).not.toBeInTheDocument();
  });

  it('signs out everywhere else, reading every page of the list', async () => {
    const live = new Set(['s1', 's2', 's3']);
    const all = [session('s1', 'Chrome on Linux', true), session('s2', 'Firefox on Windows'), session('s3', 'Safari on iOS')];
    const f = renderSecurity({
      'GET /api/v1/identity/sessions': (c) => {
        const items = all.filter((s) => live.has(s.id));
        return c.url.includes('cursor=p2') ? json(200, { items: items.slice(2) }) : json(200, { items: items.slice(0, 2), next_cursor: items.length > 2 ? 'p2' : undefined });
      },
      'DELETE /api/v1/identity/sessions/s2': () => (live.delete('s2'), new Response(null, { status: 204 })),
      'DELETE /api/v1/identity/sessions/s3': () => (live.delete('s3'), new Response(null, { status: 204 })),
    });
    await screen.findByRole('row', { name: /Firefox on Windows/ });
    await userEvent.click(screen.getByRole('button', { name: 'Sign out everywhere else' }));
    const confirm = screen.getByRole('group', { name: 'Sign out everywhere else' });
    await userEvent.click(within(confirm).getByRole('button', { name: 'Sign out everywhere else' }));
    expect(await screen.findByText('Signed out 2 other sessions.')).toBeInTheDocument();
    expect(f.calls.filter((c) => c.method === 'DELETE').map((c) => c.url)).toEqual(['/api/v1/identity/sessions/s2', '/api/v1/identity/sessions/s3']);
    await waitFor(() => expect(screen.queryByRole('row', { name: /Firefox on Windows/ })).not.toBeInTheDocument());
    expect(screen.getByRole('row', { name: /Chrome on Linux/ })).toBeInTheDocument();
  });

  it('shows a refused sign-out with the problem alert', async () => {
    renderSecurity({
      'GET /api/v1/identity/sessions': () => json(200, { items: [session('s1', 'Chrome on Linux', true), session('s2', '')] }),
      'DELETE /api/v1/identity/sessions/s2': () => problem(503, 'unavailable', 'Service unavailable', { detail: 'Try again shortly.' }),
    });
    const row = await screen.findByRole('row', { name: /Unknown device/ });
    await userEvent.click(within(row).getByRole('button', { name: /^Sign out Unknown device/ }));
    await userEvent.click(within(row).getByRole('button', { name: 'Sign out' }));
    expect(await screen.findByRole('alert')).toHaveTextContent('Service unavailable');
  });

  it('says so when there is no session (an API token) and in French', async () => {
    await act(() => i18n.changeLanguage('fr'));
    renderSecurity({ 'GET /api/v1/identity/sessions': () => json(200, { items: [] }) });
    expect(await screen.findByText('Aucune session ouverte.')).toBeInTheDocument();
    expect(screen.getByRole('heading', { level: 2, name: 'Sessions' })).toBeInTheDocument();
  });
});
