// E-mail verification, password reset and invitations in the UI, on the identity service's real shapes: the
// banner and its resend (429 explained kindly), the 403 email_unverified alert, /verify-email good and bad,
// /reset-password's per-field errors, and the members page's invitation list.

import { render, screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { MemoryRouter } from 'react-router-dom';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AppRoutes } from '../App';
import { api } from '../api/client';
import { ApiError } from '../api/problem';
import type { Me } from '../api/types';
import { SessionProvider } from '../auth/session';
import { setupI18n } from '../i18n';
import { fakeFetch, json, problem, type Handler } from '../test/fakeFetch';
import { ProblemAlert } from './ui';

setupI18n('en');

const ID = '/api/v1/identity';

function me(verified: boolean): Me {
  return {
    user: { id: 'usr_1', email: 'ana@example.ca', name: 'Ana', is_staff: false, created_at: '2026-11-01T00:00:00Z', email_verified: verified },
    memberships: [{ organization: { id: 'org_1', name: 'Ana Co', kind: 'sme', verified: true }, role: 'owner' }],
    active_organization_id: 'org_1',
  } as Me;
}

function renderPage(path: string, routes: Record<string, Handler>, signedIn = true) {
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

afterEach(() => {
  vi.unstubAllGlobals();
  api.tokens.clear();
});

describe('e-mail verification', () => {
  it('shows the banner while unverified; a too-early resend says how long to wait', async () => {
    const f = renderPage('/catalogue', {
      [`GET ${ID}/me`]: () => json(200, me(false)),
      [`POST ${ID}/email/verify/resend`]: () => problem(429, 'too_many_emails', 'Too many e-mails', { retry_after_seconds: 42 }),
    });
    await screen.findByText('Check your inbox to confirm ana@example.ca.');
    await userEvent.click(screen.getByRole('button', { name: 'Send a new link' }));
    await screen.findByText(/ask again in 42 seconds/);
    expect(f.calls.some((c) => c.method === 'POST' && c.url.endsWith('/email/verify/resend'))).toBe(true);
  });

  it('shows no banner once verified', async () => {
    renderPage('/profile', { [`GET ${ID}/me`]: () => json(200, me(true)), [`GET ${ID}/organizations/org_1/members`]: () => json(200, { items: [] }), [`GET ${ID}/organizations/org_1/invitations`]: () => json(200, { items: [] }) });
    await screen.findByRole('heading', { name: 'Profile', level: 1 });
    expect(screen.queryByText(/Check your inbox/)).toBeNull();
  });

  it('explains a 403 email_unverified and offers a new link instead of a generic error', async () => {
    const f = fakeFetch({ [`POST ${ID}/email/verify/resend`]: () => json(202, { status: 'accepted', detail: '' }) });
    vi.stubGlobal('fetch', f.fetch);
    const err = new ApiError({ type: 'x', title: 'Verify your e-mail address first.', status: 403, code: 'email_unverified', detail: 'POST /api/v1/…' });
    render(<ProblemAlert error={err} />);
    expect(screen.getByRole('alert')).toHaveTextContent('Confirm your e-mail address first');
    expect(screen.getByRole('alert')).not.toHaveTextContent('POST /api');
    await userEvent.click(screen.getByRole('button', { name: 'Send a new link' }));
    await screen.findByText(/A new link is on its way/);
  });

  it('the verify page posts the token once, then refreshes the session', async () => {
    let verified = false;
    const f = renderPage('/verify-email?token=tok_good', {
      [`GET ${ID}/me`]: () => json(200, me(verified)),
      [`POST ${ID}/email/verify`]: () => {
        verified = true;
        return json(200, { user_id: 'usr_1', email: 'ana@example.ca', email_verified: true, email_verified_at: '2026-11-02T00:00:00Z' });
      },
      [`POST ${ID}/refresh`]: () => json(200, { access_token: 'a2', refresh_token: 'r2', token_type: 'Bearer', expires_in: 900 }),
    });
    await screen.findByText(/Your e-mail address ana@example.ca is confirmed/);
    await waitFor(() => expect(f.calls.some((c) => c.url.endsWith('/refresh'))).toBe(true));
    expect(f.calls.filter((c) => c.url.endsWith('/email/verify')).map((c) => c.body)).toEqual([{ token: 'tok_good' }]);
  });

  it('the verify page explains a bad link and offers a new one', async () => {
    renderPage('/verify-email?token=nope', {
      [`GET ${ID}/me`]: () => json(200, me(false)),
      [`POST ${ID}/email/verify`]: () => problem(400, 'verification_token_invalid', 'The verification link is invalid, used or expired.'),
    });
    await screen.findByText('This confirmation link does not work');
    expect(screen.getByRole('button', { name: 'Send a new link' })).toBeInTheDocument();
  });
});

describe('password reset', () => {
  it('shows the password rule beside the field, then sends to sign-in', async () => {
    let tries = 0;
    renderPage(
      '/reset-password?token=tok_r',
      {
        [`POST ${ID}/password/reset`]: () =>
          ++tries === 1
            ? problem(422, 'validation_failed', 'The request is invalid.', { fields: [{ field: 'password', code: 'common_password', message: 'is a common password' }] })
            : new Response(null, { status: 204 }),
      },
      false,
    );
    const field = await screen.findByLabelText('New password');
    await userEvent.type(field, 'password1234');
    await userEvent.click(screen.getByRole('button', { name: 'Set the new password' }));
    await screen.findByText('is a common password');
    expect(field).toHaveAttribute('aria-invalid', 'true');
    await userEvent.click(screen.getByRole('button', { name: 'Set the new password' }));
    await screen.findByText(/Your password is changed/);
    expect(screen.getByRole('heading', { level: 1 })).toHaveTextContent('Sign in');
  });
});

describe('invitations', () => {
  it('lists invitations with their state; resends a pending one', async () => {
    const inv = { id: 'inv_1', organization_id: 'org_1', email: 'bo@example.ca', role: 'member', created_at: '2026-11-01T00:00:00Z', expires_at: '2026-11-08T00:00:00Z', invited_by: 'usr_1' };
    const f = renderPage('/profile', {
      [`GET ${ID}/me`]: () => json(200, me(true)),
      [`GET ${ID}/organizations/org_1/members`]: () => json(200, { items: [] }),
      [`GET ${ID}/organizations/org_1/invitations`]: () => json(200, { items: [{ ...inv, state: 'pending' }, { ...inv, id: 'inv_2', email: 'cy@example.ca', state: 'accepted' }] }),
      [`POST ${ID}/organizations/org_1/invitations/inv_1/resend`]: () => json(200, { ...inv, state: 'pending' }),
    });
    await screen.findByText('Accepted');
    expect(screen.queryByRole('button', { name: 'Resend to cy@example.ca' })).toBeNull();
    await userEvent.click(screen.getByRole('button', { name: 'Resend to bo@example.ca' }));
    await screen.findByText(/A new invitation went to bo@example.ca/);
    expect(f.calls.some((c) => c.method === 'POST' && c.url.endsWith('/invitations/inv_1/resend'))).toBe(true);
    expect(screen.getByRole('button', { name: 'Revoke the invitation to bo@example.ca' })).toBeInTheDocument();
  });
});
