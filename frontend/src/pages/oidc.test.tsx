// The OpenID Connect callback page: a refusal's problem code is explained (in French too: e2e/oidc.e2e.ts), an
// unknown one gets the generic message, and neither calls the API.

import { render, screen } from '@testing-library/react';
import { MemoryRouter, Route, Routes } from 'react-router-dom';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SessionProvider } from '../auth/session';
import { setupI18n } from '../i18n';
import en from '../locales/en.json';
import { OIDCCallback } from './Auth';

function at(url: string) {
  return render(
    <SessionProvider>
      <MemoryRouter initialEntries={[url]}>
        <Routes>
          <Route path="/signin/callback" element={<OIDCCallback />} />
        </Routes>
      </MemoryRouter>
    </SessionProvider>,
  );
}

describe('OIDC callback page', () => {
  afterEach(() => vi.restoreAllMocks());

  it('explains a refused domain without calling the API', async () => {
    const fetch = vi.spyOn(globalThis, 'fetch');
    setupI18n('en');
    at('/signin/callback?error=oidc_domain_not_allowed');
    expect((await screen.findByRole('alert')).textContent).toContain(en.oidc_error.oidc_domain_not_allowed);
    expect(screen.getByRole('link', { name: en.oidc.back }).getAttribute('href')).toBe('/signin');
    expect(fetch).not.toHaveBeenCalled();
  });

  it('gives the generic message for a code it does not know', async () => {
    setupI18n('en');
    at('/signin/callback?error=internal');
    expect((await screen.findByRole('alert')).textContent).toContain(en.oidc_error.other);
  });
});
