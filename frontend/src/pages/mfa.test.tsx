// Two-step sign-in in the UI against the identity service's shapes (services/identity/mfa.go): the sign-in's second
// step (wrong code, recovery code, expired challenge), enrolment on the security page, and the mfa_required message.

import { act, render, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { MemoryRouter } from 'react-router-dom';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { api } from '../api/client';
import { ApiError } from '../api/problem';
import { AppRoutes } from '../App';
import { SessionProvider } from '../auth/session';
import { ProblemAlert } from '../components/ui';
import i18n, { setupI18n } from '../i18n';
import { fakeFetch, json, problem, type Handler } from '../test/fakeFetch';

setupI18n('en');

const staffMe = {
  user: { id: 'u1', email: 'staff@tamarack.demo', name: 'Sam Staff', is_staff: true, created_at: '2026-11-22T00:00:00Z' },
  memberships: [{ organization: { id: 'o1', name: 'Programme', kind: 'programme', verified: true }, role: 'owner' }],
  active_organization_id: 'o1',
};
const tokens = { access_token: 'a2', refresh_token: 'r2', token_type: 'Bearer', expires_in: 900 };

// Pages call the application's client (api), which uses the global fetch.
function renderApp(path: string, routes: Record<string, Handler>, signedIn = false) {
  const f = fakeFetch(routes);
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

async function password(email = 'staff@tamarack.demo') {
  await userEvent.type(screen.getByLabelText('Email'), email);
  await userEvent.type(screen.getByLabelText('Password'), 'tamarack-demo-2026');
  await userEvent.click(screen.getByRole('button', { name: 'Sign in' }));
}

describe('sign-in second step', () => {
  it('asks for the code, says a wrong code in words and signs in with the right one', async () => {
    let tries = 0;
    const f = renderApp('/signin', {
      'POST /api/v1/identity/login': () => json(200, { mfa_required: true, mfa_token: 'chal', expires_in: 300 }),
      'POST /api/v1/identity/login/mfa': () =>
        ++tries === 1 ? problem(401, 'invalid_mfa_code', 'The code is wrong, expired or already used.') : json(200, tokens),
      'GET /api/v1/identity/me': () => json(200, staffMe),
    });
    await password();
    const code = await screen.findByLabelText('Authentication code');
    await waitFor(() => expect(code).toHaveFocus());
    // A malformed code is refused here, in the person's language, without spending a try.
    await userEvent.type(code, '12');
    await userEvent.click(screen.getByRole('button', { name: 'Verify and sign in' }));
    expect(code).toHaveAccessibleDescription(/Enter the 6 digits/);
    expect(f.calls.filter((c) => c.url.endsWith('/login/mfa'))).toHaveLength(0);

    await userEvent.clear(code);
    await userEvent.type(code, '123 456');
    await userEvent.click(screen.getByRole('button', { name: 'Verify and sign in' }));
    expect(await screen.findByRole('alert')).toHaveTextContent('That code is wrong, expired or already used.');
    await waitFor(() => expect(screen.getByLabelText('Authentication code')).toHaveFocus());
    expect(screen.getByLabelText('Authentication code')).toHaveValue('');

    await userEvent.type(screen.getByLabelText('Authentication code'), '654321');
    await userEvent.click(screen.getByRole('button', { name: 'Verify and sign in' }));
    await screen.findByRole('button', { name: 'Sign out' });
    const mfaCalls = f.calls.filter((c) => c.url.endsWith('/login/mfa'));
    expect(mfaCalls.map((c) => c.body)).toEqual([
      { mfa_token: 'chal', code: '123456' },
      { mfa_token: 'chal', code: '654321' },
    ]);
    expect(localStorage.getItem('tamarack.refresh_token')).toBe('r2');
  });

  it('signs in with a recovery code', async () => {
    const f = renderApp('/signin', {
      'POST /api/v1/identity/login': () => json(200, { mfa_required: true, mfa_token: 'chal', expires_in: 300 }),
      'POST /api/v1/identity/login/mfa': () => json(200, tokens),
      'GET /api/v1/identity/me': () => json(200, staffMe),
    });
    await password();
    await userEvent.click(await screen.findByRole('button', { name: 'Use a recovery code' }));
    const field = screen.getByLabelText('Recovery code');
    await waitFor(() => expect(field).toHaveFocus());
    await userEvent.type(field, 'abcd-efgh-ijkl-mnop');
    await userEvent.click(screen.getByRole('button', { name: 'Verify and sign in' }));
    await screen.findByRole('button', { name: 'Sign out' });
    expect(f.calls.find((c) => c.url.endsWith('/login/mfa'))?.body).toEqual({ mfa_token: 'chal', recovery_code: 'abcd-efgh-ijkl-mnop' });
  });

  it('goes back to the password when the challenge expired', async () => {
    renderApp('/signin', {
      'POST /api/v1/identity/login': () => json(200, { mfa_required: true, mfa_token: 'chal', expires_in: 300 }),
      'POST /api/v1/identity/login/mfa': () => problem(401, 'mfa_token_invalid', 'The sign-in challenge is invalid, expired or used up.'),
    });
    await password();
    await userEvent.type(await screen.findByLabelText('Authentication code'), '123456');
    await userEvent.click(screen.getByRole('button', { name: 'Verify and sign in' }));
    expect(await screen.findByRole('alert')).toHaveTextContent('The sign-in step expired');
    expect(screen.getByLabelText('Password')).toBeInTheDocument();
    expect(screen.getByLabelText('Email')).toHaveValue('staff@tamarack.demo');
  });
});

describe('security page', () => {
  it('enrols: password, QR code and secret, first code, recovery codes shown once', async () => {
    let enabled = false;
    const f = renderApp(
      '/account/security',
      {
        'GET /api/v1/identity/me': () => json(200, staffMe),
        'GET /api/v1/identity/mfa': () =>
          json(200, enabled
            ? { enabled: true, pending: false, enabled_at: '2026-12-05T22:00:00Z', recovery_codes_left: 10, required: true }
            : { enabled: false, pending: false, recovery_codes_left: 0, required: true }),
        'POST /api/v1/identity/mfa/totp': () =>
          json(201, { secret: 'JBSWY3DPEHPK3PXP', otpauth_uri: 'otpauth://totp/Tamarack:staff%40tamarack.demo?secret=JBSWY3DPEHPK3PXP&issuer=Tamarack', algorithm: 'SHA1', digits: 6, period: 30 }),
        'POST /api/v1/identity/mfa/totp/confirm': () => {
          enabled = true;
          return json(200, { recovery_codes: Array.from({ length: 10 }, (_, i) => `AAAA-BBBB-CCCC-DDD${i}`) });
        },
      },
      true,
    );
    expect(await screen.findByText('Off')).toBeInTheDocument();
    expect(screen.getByText(/Your account needs two-step sign-in/)).toBeInTheDocument();
    await userEvent.click(screen.getByRole('button', { name: 'Turn on two-step sign-in' }));
    await userEvent.type(screen.getByLabelText('Password'), 'tamarack-demo-2026');
    await userEvent.click(screen.getByRole('button', { name: 'Continue' }));
    expect(await screen.findByRole('img', { name: 'QR code of the authenticator setup link' })).toBeInTheDocument();
    expect(screen.getByLabelText('Secret (to type in the app)')).toHaveValue('JBSWY3DPEHPK3PXP');
    expect(screen.getByLabelText('Setup link (otpauth://)')).toHaveValue('otpauth://totp/Tamarack:staff%40tamarack.demo?secret=JBSWY3DPEHPK3PXP&issuer=Tamarack');
    await userEvent.type(screen.getByLabelText('Code from the app'), '123456');
    await userEvent.click(screen.getByRole('button', { name: 'Turn on' }));
    const list = await screen.findByRole('list', { name: 'Your recovery codes' });
    expect(within(list).getAllByRole('listitem')).toHaveLength(10);
    expect(screen.getByText(/shown only once/)).toBeInTheDocument();
    expect(screen.getByRole('button', { name: 'Download as a text file' })).toBeInTheDocument();
    expect(f.calls.find((c) => c.url.endsWith('/mfa/totp'))?.body).toEqual({ password: 'tamarack-demo-2026' });
    await userEvent.click(screen.getByRole('button', { name: 'I have saved them' }));
    expect(screen.queryByRole('list', { name: 'Your recovery codes' })).not.toBeInTheDocument();
    expect(await screen.findByText('10 unused codes left')).toBeInTheDocument();
    expect(screen.getByRole('button', { name: 'Make new recovery codes' })).toBeInTheDocument();
  });
});

describe('mfa_required', () => {
  it('points to the security page instead of a generic error', () => {
    render(
      <MemoryRouter>
        <ProblemAlert error={new ApiError({ type: 'about:blank', title: 'Sign in with a second factor (MFA) to do this.', status: 403, code: 'mfa_required' })} />
      </MemoryRouter>,
    );
    const alert = screen.getByRole('alert');
    expect(alert).toHaveTextContent('Two-step sign-in required');
    expect(within(alert).getByRole('link', { name: 'Security settings' })).toHaveAttribute('href', '/account/security');
  });
});
