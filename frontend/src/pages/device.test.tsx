// The /device page against identity's device-login shapes (services/identity/device_http.go): a prefilled code
// shows what is asking and is approved; a typed code (lower case, no dash) is looked up and denied; an expired
// code says so; signed-out visitors are sent to sign in.

import { act, render, screen } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { MemoryRouter } from 'react-router-dom';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { api } from '../api/client';
import type { DeviceLoginRequest } from '../api/types';
import { AppRoutes } from '../App';
import { SessionProvider } from '../auth/session';
import en from '../locales/en.json';
import i18n, { setupI18n } from '../i18n';
import { fakeFetch, json, problem, type Handler } from '../test/fakeFetch';

setupI18n('en');

const smeMe = {
  user: { id: 'u1', email: 'sme@tamarack.demo', name: 'Sam SME', is_staff: false, created_at: '2026-11-22T00:00:00Z', email_verified: true },
  memberships: [{ organization: { id: 'o1', name: 'Demo SME', kind: 'sme', verified: true }, role: 'owner' }],
  active_organization_id: 'o1',
};

const pending: DeviceLoginRequest = {
  user_code: 'BCDF-GHJK',
  client_name: 'tamarack CLI on build-01',
  device: 'Tamarack CLI on Linux',
  ip: '203.0.113.9',
  status: 'pending',
  created_at: '2026-12-06T01:00:00Z',
  expires_at: '2026-12-06T01:10:00Z',
};

function renderAt(path: string, routes: Record<string, Handler>, signedIn = true) {
  const f = fakeFetch({ 'GET /api/v1/identity/me': () => json(200, smeMe), ...routes });
  vi.stubGlobal('fetch', f.fetch);
  if (signedIn) api.tokens.set('a1', 'r1');
  render(
    <SessionProvider client={api}>
      <MemoryRouter initialEntries={[path]}>
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

describe('the /device page', () => {
  it('shows what a prefilled code signs in and approves it', async () => {
    const f = renderAt('/device?code=BCDF-GHJK', {
      'GET /api/v1/identity/device/BCDF-GHJK': () => json(200, pending),
      'POST /api/v1/identity/device/BCDF-GHJK/approve': () => json(200, { ...pending, status: 'approved' }),
    });
    const req = await screen.findByTestId('device-request');
    expect(req).toHaveTextContent('tamarack CLI on build-01');
    expect(req).toHaveTextContent('Tamarack CLI on Linux');
    expect(req).toHaveTextContent('203.0.113.9');
    await userEvent.click(screen.getByRole('button', { name: en.device.approve }));
    await screen.findByText(en.device.return_to_terminal);
    expect(screen.getByText(en.device.approved)).toBeInTheDocument();
    expect(f.calls.filter((c) => c.method === 'POST').map((c) => new URL(c.url, 'http://x').pathname)).toEqual(['/api/v1/identity/device/BCDF-GHJK/approve']);
  });

  it('looks up a typed code and denies it', async () => {
    renderAt('/device', {
      'GET /api/v1/identity/device/BCDFGHJK': () => json(200, pending),
      'POST /api/v1/identity/device/BCDF-GHJK/deny': () => json(200, { ...pending, status: 'denied' }),
    });
    await userEvent.type(await screen.findByLabelText(en.device.code_label), 'bcdfghjk');
    await userEvent.click(screen.getByRole('button', { name: en.device.continue }));
    await screen.findByTestId('device-request');
    await userEvent.click(screen.getByRole('button', { name: en.device.deny }));
    await screen.findByText(en.device.denied);
    expect(screen.getByText(en.device.return_to_terminal)).toBeInTheDocument();
  });

  it('says when a code has expired and keeps the field to type another', async () => {
    renderAt('/device?code=BCDF-GHJK', {
      'GET /api/v1/identity/device/BCDF-GHJK': () => problem(410, 'device_code_expired', 'This code has expired.'),
    });
    const alert = await screen.findByRole('alert');
    expect(alert).toHaveTextContent(en.device.error.device_code_expired_title);
    expect(screen.getByLabelText(en.device.code_label)).toHaveValue('BCDF-GHJK');
  });

  it('sends signed-out visitors to sign in (the e2e test follows them back)', async () => {
    const f = renderAt('/device?code=BCDF-GHJK', {}, false);
    await screen.findByRole('heading', { name: en.signin.title });
    expect(f.calls.some((c) => c.url.includes('/device/'))).toBe(false);
  });
});
