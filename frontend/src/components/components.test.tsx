import { act, cleanup, render, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { MemoryRouter } from 'react-router-dom';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { api, ApiClient } from '../api/client';
import { ApiError } from '../api/problem';
import { TokenStore } from '../api/tokens';
import { AppRoutes } from '../App';
import { SessionProvider } from '../auth/session';
import i18n, { LANG_KEY, setupI18n } from '../i18n';
import { fakeFetch, json, problem, type Handler } from '../test/fakeFetch';
import { navItems } from './Layout';
import { DataTable, PagedBlock, ProblemAlert } from './ui';

setupI18n('en');

function renderApp(path: string, routes: Record<string, Handler> = {}, signedIn = false) {
  const f = fakeFetch(routes);
  const tokens = new TokenStore(localStorage);
  if (signedIn) tokens.set('a1', 'r1');
  const client = new ApiClient({ fetch: f.fetch, tokens });
  render(
    <SessionProvider client={client}>
      <MemoryRouter initialEntries={[path]}>
        <AppRoutes />
      </MemoryRouter>
    </SessionProvider>,
  );
  return f;
}

beforeEach(async () => {
  await act(() => i18n.changeLanguage('en'));
});

describe('language switch', () => {
  it('switches the UI to French, remembers it and sets <html lang>', async () => {
    renderApp('/');
    expect(screen.getByRole('heading', { level: 1 })).toHaveTextContent('AI models, datasets and GPU time');
    await userEvent.click(screen.getByRole('button', { name: /switch the language to français/i }));
    expect(screen.getByRole('heading', { level: 1 })).toHaveTextContent('Modèles d’IA, jeux de données et temps GPU');
    expect(document.documentElement.lang).toBe('fr');
    expect(localStorage.getItem(LANG_KEY)).toBe('fr');
    await userEvent.click(screen.getByRole('button', { name: /passer la langue à english/i }));
    expect(document.documentElement.lang).toBe('en');
  });
});

describe('sign-up', () => {
  it('shows the problem title and each field message beside its field', async () => {
    const f = renderApp('/signup', {
      'POST /api/v1/identity/signup': () =>
        problem(422, 'validation_failed', 'The request has invalid fields.', {
          detail: '2 invalid field(s)',
          fields: [
            { field: 'email', code: 'invalid', message: 'must be an email address' },
            { field: 'organization.name', code: 'required', message: 'an organisation needs a name' },
          ],
        }),
    });
    await userEvent.click(screen.getByLabelText(/Vendor/));
    await userEvent.type(screen.getByLabelText('Email'), 'nope');
    await userEvent.click(screen.getByRole('button', { name: 'Create the account' }));
    const alert = await screen.findByRole('alert');
    expect(alert).toHaveTextContent('The request has invalid fields.');
    expect(alert).toHaveTextContent('2 invalid field(s)');
    const email = screen.getByLabelText('Email');
    expect(email).toHaveAttribute('aria-invalid', 'true');
    expect(email).toHaveAccessibleDescription('must be an email address');
    expect(screen.getByLabelText('Organisation name')).toHaveAccessibleDescription('an organisation needs a name');
    expect(f.calls[0].body).toMatchObject({ email: 'nope', organization: { kind: 'vendor' } });
  });

  it('signs up, stores the refresh token and shows the signed-in header', async () => {
    const me = {
      user: { id: 'u1', email: 'a@b.ca', name: 'Ada', is_staff: false },
      memberships: [{ organization: { id: 'o1', name: 'Acme', kind: 'sme', verified: false }, role: 'owner' }],
      active_organization_id: 'o1',
    };
    renderApp('/signup', {
      'POST /api/v1/identity/signup': () =>
        json(201, { access_token: 'a1', refresh_token: 'r1', token_type: 'Bearer', expires_in: 900, user: me.user, organization: me.memberships[0].organization }),
      'GET /api/v1/identity/me': () => json(200, me),
    });
    await userEvent.type(screen.getByLabelText('Organisation name'), 'Acme');
    await userEvent.type(screen.getByLabelText('Your name'), 'Ada');
    await userEvent.type(screen.getByLabelText('Email'), 'a@b.ca');
    await userEvent.type(screen.getByLabelText('Password'), 'correct horse battery');
    await userEvent.click(screen.getByRole('button', { name: 'Create the account' }));
    const nav = await screen.findByRole('navigation', { name: 'Main' });
    expect(await within(nav).findByRole('link', { name: 'Sandboxes' })).toBeInTheDocument();
    expect(within(nav).getByRole('link', { name: /Ada/ })).toBeInTheDocument();
    expect(localStorage.getItem('tamarack.refresh_token')).toBe('r1');
  });
});

describe('navigation by role', () => {
  const base = { status: 'authenticated' as const, isStaff: false, isOrgAdmin: false };
  const labels = (s: Parameters<typeof navItems>[0]) => navItems(s).map((i) => i.label);
  it('shows only the catalogue to visitors', () => {
    expect(labels({ ...base, status: 'anonymous', kind: null })).toEqual(['nav.catalogue']);
  });
  it('gives vendors their listings and earnings only as admins', () => {
    expect(labels({ ...base, kind: 'vendor' })).toContain('nav.my_listings');
    expect(labels({ ...base, kind: 'vendor' })).not.toContain('nav.earnings');
    expect(labels({ ...base, kind: 'vendor', isOrgAdmin: true })).toContain('nav.earnings');
  });
  it('gives SMEs sandboxes and staff the review queue', () => {
    expect(labels({ ...base, kind: 'sme' })).toContain('nav.sandboxes');
    expect(labels({ ...base, kind: 'sme' })).not.toContain('nav.reviews');
    expect(labels({ ...base, kind: 'partner', isStaff: true })).toContain('nav.reviews');
  });
});

describe('guards', () => {
  it('sends visitors of a private page to sign in', async () => {
    renderApp('/wallet');
    expect(await screen.findByRole('heading', { name: 'Sign in' })).toBeInTheDocument();
  });
});

describe('ProblemAlert', () => {
  it('renders title and detail', () => {
    render(<ProblemAlert error={new ApiError({ type: 't', title: 'No free devices.', status: 409, code: 'no_capacity', detail: 'try later' })} />);
    expect(screen.getByRole('alert')).toHaveTextContent('No free devices.try later');
  });
  it('says the server is unreachable on network errors', () => {
    render(<ProblemAlert error={new ApiError({ type: 't', title: 'network_error', status: 0, code: 'network_error' })} />);
    expect(screen.getByRole('alert')).toHaveTextContent('The server could not be reached');
  });
});

describe('pages on the services\' real shapes', () => {
  // Pages call the application's client (api), which uses the global fetch.
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
  afterEach(() => {
    vi.unstubAllGlobals();
    api.tokens.clear();
  });

  const vendorMe = {
    user: { id: 'u1', email: 'v@b.ca', name: 'Val', is_staff: false, created_at: '2026-11-22T00:00:00Z' },
    memberships: [{ organization: { id: 'o1', name: 'Prairie Data', kind: 'vendor', verified: true }, role: 'owner' }],
    active_organization_id: 'o1',
  };
  const version = (state: string, comment = '') => ({
    id: 'ver_1', version: 1, state, comment, title: 'Wheat rust', summary: 's', card_markdown: '', card_html: '',
    tags: [], license: { spdx: 'MIT' }, residency: 'CA', canadian_owned_ip: false, visibility: 'public',
    visible_to: [], gated: false, dataset: { format: 'csv' }, plans: [], artifacts: [], created_at: '2026-11-22T00:00:00Z',
  });

  it("my listings show the pending version's state and the reviewer's comment", async () => {
    renderPage(
      '/vendor/listings',
      {
        'GET /api/v1/identity/me': () => json(200, vendorMe),
        'GET /api/v1/marketplace/my/listings': () =>
          json(200, {
            items: [
              {
                id: 'lst_1', slug: 'wheat-rust', kind: 'dataset', status: 'draft', vendor: { id: 'o1', name: 'Prairie Data' },
                pending_version: version('changes_requested', 'Please add the licence.'),
                created_at: '2026-11-22T00:00:00Z', updated_at: '2026-11-22T00:00:00Z',
              },
            ],
          }),
      },
    );
    const row = (await screen.findByText('Wheat rust', {}, { timeout: 8000 })).closest('tr')!;
    expect(within(row).getByText('Changes requested')).toBeInTheDocument();
    expect(within(row).getByText('Please add the licence.')).toBeInTheDocument();
    expect(within(row).getByRole('button', { name: 'Submit for review' })).toBeInTheDocument();
  });

  it('the sandbox page shows the state, the cost so far and the stop reason', async () => {
    renderPage(
      '/sandboxes/sb-1',
      {
        'GET /api/v1/identity/me': () =>
          json(200, { ...vendorMe, memberships: [{ organization: { id: 'o2', name: 'Maple', kind: 'sme', verified: true }, role: 'owner' }], active_organization_id: 'o2' }),
        'GET /api/v1/testbed/sandboxes/sb-1': () =>
          json(200, {
            id: 'sb-1', state: 'stopped', organization_id: 'o2', listing_id: 'lst_c', pool_id: 'p', backend: 'local',
            gpu_model: 'h100-80gb', gpu_count: 1, template: 'shell', duration_minutes: 15, usage_millis: 36_000,
            charge_micro: 25_000, charge_display: '0.025', stop_reason: 'user', created_at: '2026-11-22T00:00:00Z',
            ports: [], proxy_urls: [], logs_url: '/x', terminal_url: '/y', message: 'exit code 143',
          }),
        'GET /api/v1/testbed/sandboxes/sb-1/gpu-samples': () => json(200, { measured: false, not_measured_reason: 'declared_devices', items: [] }),
      },
    );
    expect(await screen.findByText('0.03 credits', {}, { timeout: 8000 })).toBeInTheDocument(); // 0.025 rounded half away from zero, two decimals
    expect(screen.getByText('Stopped')).toBeInTheDocument();
    // A stop by the user is said in words, with the total (not "so far"), and never as the signal's exit code.
    expect(screen.getByText('You stopped this sandbox.')).toBeInTheDocument();
    expect(screen.getByTestId('charge-label')).toHaveTextContent('Total');
    expect(screen.queryByText(/exit code 143/)).not.toBeInTheDocument();
    expect(await screen.findByTestId('gpu-not-measured')).toHaveTextContent('Not measured.');
    expect(screen.queryByRole('button', { name: 'Stop' })).not.toBeInTheDocument();
  });

  it('a sandbox whose image is being pulled shows how far the pull is, and the image', async () => {
    renderPage(
      '/sandboxes/sb-2',
      {
        'GET /api/v1/identity/me': () =>
          json(200, { ...vendorMe, memberships: [{ organization: { id: 'o2', name: 'Maple', kind: 'sme', verified: true }, role: 'owner' }], active_organization_id: 'o2' }),
        'GET /api/v1/testbed/sandboxes/sb-2': () =>
          json(200, {
            id: 'sb-2', state: 'provisioning', organization_id: 'o2', listing_id: 'lst_c', pool_id: 'p', backend: 'local',
            gpu_model: 'h100-80gb', gpu_count: 1, template: 'shell', image: 'shell', duration_minutes: 15, usage_millis: 0,
            charge_micro: 0, charge_display: '0.00', created_at: '2026-11-22T00:00:00Z', ports: [], proxy_urls: [], logs_url: '/x', terminal_url: '/y',
            progress: { phase: 'pulling', done_bytes: 12 * 1024 * 1024, total_bytes: 23 * 1024 * 1024, image_digest: 'sha256:5e5e', updated_at: '2026-11-22T00:00:01Z' },
          }),
      },
    );
    expect(await screen.findByText('Pulling the image: 12 MiB of 23 MiB', {}, { timeout: 8000 })).toBeInTheDocument();
    expect(screen.getByText('Image').nextSibling).toHaveTextContent('shell');
  });

  const smeMe = { ...vendorMe, memberships: [{ organization: { id: 'o2', name: 'Maple', kind: 'sme', verified: true }, role: 'owner' }], active_organization_id: 'o2' };
  const mapleImage = 'registry.example.com/aurora/maple-serve@sha256:' + 'ab'.repeat(32);
  const modelListing = {
    id: 'lst_m', slug: 'maple', kind: 'model', status: 'published', vendor: { id: 'o1', name: 'Prairie Data' },
    published_version: {
      ...version('published'), title: 'Maple 7B', dataset: undefined, model: { framework: 'pytorch', task: 'text-generation' },
      try_it: { image: mapleImage, command: ['/usr/bin/serve', '--port', '8080'], ports: [8080] },
    },
    created_at: '2026-11-22T00:00:00Z', updated_at: '2026-11-22T00:00:00Z',
  };

  it("a model's page shows its try-it image and leads to the launch form", async () => {
    renderPage('/listings/lst_m', {
      'GET /api/v1/identity/me': () => json(200, smeMe),
      'GET /api/v1/marketplace/listings/lst_m': () => json(200, modelListing),
      'GET /api/v1/marketplace/listings/lst_m/reviews': () => json(200, { items: [] }),
    });
    const section = (await screen.findByRole('heading', { name: 'Try it' }, { timeout: 8000 })).closest('section')!;
    expect(within(section).getByText(mapleImage)).toBeInTheDocument();
    expect(within(section).getByText('/usr/bin/serve --port 8080')).toBeInTheDocument();
    expect(within(section).getByRole('link', { name: 'Try it in a sandbox' })).toHaveAttribute('href', '/sandboxes/new?try=lst_m');
  });

  it("a model's try-it image is explained, not offered, to an organisation without access (the listing's viewer)", async () => {
    const viewer = { entitled: false, can_download: false, can_rate: false, can_request_access: false, access_request: null };
    renderPage('/listings/lst_m', {
      'GET /api/v1/identity/me': () => json(200, smeMe),
      'GET /api/v1/marketplace/listings/lst_m': () => json(200, { ...modelListing, viewer }),
      'GET /api/v1/marketplace/listings/lst_m/reviews': () => json(200, { items: [] }),
    });
    const section = (await screen.findByRole('heading', { name: 'Try it' }, { timeout: 8000 })).closest('section')!;
    expect(within(section).getByText(/order one of the plans/)).toBeInTheDocument();
    expect(within(section).queryByRole('link', { name: 'Try it in a sandbox' })).toBeNull();
    // Nor may it rate: the rating form waits for an entitlement.
    expect(screen.queryByRole('button', { name: 'Send the rating' })).toBeNull();
    expect(screen.getByText('Organisations with access to this listing can rate it.')).toBeInTheDocument();
  });

  it('staff suspend a published listing with a reason, after a confirmation that Cancel leaves without effect', async () => {
    const sent: unknown[] = [];
    renderPage('/listings/lst_m', {
      'GET /api/v1/identity/me': () => json(200, staffMe),
      'GET /api/v1/marketplace/listings/lst_m': () => json(200, modelListing),
      'GET /api/v1/marketplace/listings/lst_m/reviews': () => json(200, { items: [] }),
      'POST /api/v1/marketplace/listings/lst_m/suspend': async (c) => {
        sent.push(c.body);
        return json(200, { ...modelListing, status: 'suspended', status_reason: 'Licence unclear' });
      },
    });
    const open = await screen.findByRole('button', { name: 'Suspend Maple 7B' }, { timeout: 8000 });
    await userEvent.click(open);
    let dialog = screen.getByRole('dialog', { name: 'Suspend this listing?' });
    await userEvent.click(within(dialog).getByRole('button', { name: 'Cancel' }));
    expect(screen.queryByRole('dialog')).toBeNull();
    expect(sent).toEqual([]);
    await userEvent.click(screen.getByRole('button', { name: 'Suspend Maple 7B' }));
    dialog = screen.getByRole('dialog', { name: 'Suspend this listing?' });
    await userEvent.type(within(dialog).getByLabelText(/Reason/), 'Licence unclear');
    await userEvent.click(within(dialog).getByRole('button', { name: 'Suspend the listing' }));
    await waitFor(() => expect(sent).toEqual([{ reason: 'Licence unclear' }]));
  });

  it('the launch form runs a try-it image on a pool that allows it, without a template, and shows why a launch is refused', async () => {
    let launches = 0;
    const f = renderPage('/sandboxes/new?try=lst_m', {
      'GET /api/v1/identity/me': () => json(200, smeMe),
      'GET /api/v1/marketplace/listings/lst_m': () => json(200, modelListing),
      'GET /api/v1/testbed/templates': () => json(200, { items: [{ name: 'shell', title: 'Shell' }] }),
      'GET /api/v1/billing/wallet': () => json(200, { available_micro: 100_000_000, available_display: '100.00' }),
      'GET /api/v1/testbed/listings': () =>
        json(200, {
          items: [
            { id: 'lst_open', title: 'H100 Montréal', gpu_model: 'h100-80gb', region: 'ca', pool_id: 'p1', vendor_org_id: 'v', min_duration_minutes: 15, max_duration_minutes: 480, price_per_gpu_hour_micro: 2_500_000, price_per_gpu_hour_display: '2.50', image_allowed: true, gpu_counts: [{ gpu_count: 1, free_now: 3 }, { gpu_count: 2, free_now: 1 }] },
            { id: 'lst_closed', title: 'L4 Toronto', gpu_model: 'l4-24gb', region: 'ca', pool_id: 'p2', vendor_org_id: 'v', min_duration_minutes: 15, max_duration_minutes: 480, price_per_gpu_hour_micro: 900_000, price_per_gpu_hour_display: '0.90', image_allowed: false },
          ],
        }),
      'POST /api/v1/testbed/sandboxes': () =>
        ++launches === 1
          ? problem(403, 'access_required', 'Your organisation needs access to the listing whose image the sandbox would run.', {
              detail: 'order one of its plans in the marketplace',
            })
          : json(202, { id: 'sb-9', state: 'requested' }),
    });
    expect(await screen.findByRole('heading', { name: 'Try Maple 7B' }, { timeout: 8000 })).toBeInTheDocument();
    expect(within(screen.getByTestId('sum-image')).getByText(mapleImage)).toBeInTheDocument();
    const closed = await screen.findByRole('option', { name: /L4 Toronto .*image not allowed on this pool/ });
    expect(closed).toBeDisabled();
    expect(f.calls.some((c) => c.url.includes('/testbed/listings?image_listing_id=lst_m'))).toBe(true);
    await userEvent.selectOptions(screen.getByLabelText('GPU-time listing'), 'lst_open');
    expect(screen.getByLabelText('Limits')).toHaveValue('');
    // The summary: the hold for the booked hour and the balance after it; only the counts the pool can hold.
    expect(screen.getByTestId('estimate')).toHaveTextContent('2.50');
    expect(screen.getByTestId('sum-after')).toHaveTextContent('97.50');
    expect(within(screen.getByLabelText('Number of GPUs')).getAllByRole('option').map((o) => o.getAttribute('value'))).toEqual(['1', '2']);
    await userEvent.click(screen.getByRole('button', { name: 'Start the sandbox' }));
    expect(await screen.findByRole('alert')).toHaveTextContent('needs access');
    await userEvent.click(screen.getByRole('button', { name: 'Start the sandbox' }));
    await waitFor(() => expect(launches).toBe(2));
    const sent = f.calls.filter((c) => c.method === 'POST' && c.url.endsWith('/testbed/sandboxes'));
    expect(sent[1].body).toEqual({ listing_id: 'lst_open', gpu_model: 'h100-80gb', gpu_count: 1, duration_minutes: 60, image_listing_id: 'lst_m' });
  }, 20_000);

  it("a dataset without an image of its own is tried with its files: the launch form notes the read-only mount and sends mount_listing_id", async () => {
    const dataset = {
      ...modelListing, id: 'lst_d', kind: 'dataset',
      published_version: { ...version('published'), title: 'Wheat rust', artifacts: [{ id: 'art_1', name: 'rust.csv', size_bytes: 10, sha256: 'a'.repeat(64), content_type: 'text/csv', created_at: '2026-11-22T00:00:00Z' }] },
    };
    renderPage('/listings/lst_d', {
      'GET /api/v1/identity/me': () => json(200, smeMe),
      'GET /api/v1/marketplace/listings/lst_d': () => json(200, dataset),
      'GET /api/v1/marketplace/listings/lst_d/reviews': () => json(200, { items: [] }),
    });
    const section = (await screen.findByRole('heading', { name: 'Try in a sandbox' }, { timeout: 8000 })).closest('section')!;
    expect(within(section).getByText('Start a sandbox on GPU time you choose, with this listing’s files mounted read-only at /artifacts/lst_d/.')).toBeInTheDocument();
    expect(within(section).getByRole('link', { name: 'Try it in a sandbox' })).toHaveAttribute('href', '/sandboxes/new?mount=lst_d');
    cleanup();

    const f = renderPage('/sandboxes/new?mount=lst_d&listing=lst_open', {
      'GET /api/v1/identity/me': () => json(200, smeMe),
      'GET /api/v1/marketplace/listings/lst_d': () => json(200, dataset),
      'GET /api/v1/testbed/templates': () => json(200, { items: [{ name: 'shell', title: 'Shell' }] }),
      'GET /api/v1/billing/wallet': () => json(200, { available_micro: 100_000_000, available_display: '100.00' }),
      'GET /api/v1/testbed/listings': () =>
        json(200, {
          items: [
            { id: 'lst_open', title: 'H100 Montréal', gpu_model: 'h100-80gb', region: 'ca', pool_id: 'p1', vendor_org_id: 'v', min_duration_minutes: 15, max_duration_minutes: 480, price_per_gpu_hour_micro: 2_500_000, price_per_gpu_hour_display: '2.50', gpu_counts: [{ gpu_count: 1, free_now: 3 }] },
          ],
        }),
      'POST /api/v1/testbed/sandboxes': () => json(202, { id: 'sb-9', state: 'requested' }),
    });
    expect(await screen.findByTestId('mount-note', undefined, { timeout: 8000 })).toHaveTextContent('The listing’s file is mounted read-only at /artifacts/lst_d/ in the sandbox.');
    expect(await screen.findByTestId('sum-artifacts')).toHaveTextContent('Mounted read-only at /artifacts/lst_d/ (1 file)');
    await userEvent.click(await screen.findByRole('button', { name: 'Launch' }));
    await waitFor(() => expect(f.calls.some((c) => c.method === 'POST')).toBe(true));
    const sent = f.calls.filter((c) => c.method === 'POST' && c.url.endsWith('/testbed/sandboxes'));
    expect(sent[0].body).toMatchObject({ listing_id: 'lst_open', template: 'shell', mount_listing_id: 'lst_d' });
  }, 20_000);

  it("the vendor's editor shows a refused try-it image beside its field", async () => {
    const draft = { ...modelListing, status: 'draft', published_version: undefined, pending_version: { ...modelListing.published_version, state: 'draft', try_it: undefined } };
    const f = renderPage('/vendor/listings/lst_m/edit', {
      'GET /api/v1/identity/me': () => json(200, vendorMe),
      'GET /api/v1/marketplace/listings/lst_m': () => json(200, draft),
      'PATCH /api/v1/marketplace/listings/lst_m': () =>
        problem(422, 'validation_failed', 'The request has invalid fields.', {
          fields: [{ field: 'try_it.image', code: 'not_pinned', message: 'must be pinned by digest (registry/repository@sha256:<64 hex digits>), not a tag' }],
        }),
    });
    const image = await screen.findByLabelText('Image, pinned by digest', {}, { timeout: 8000 });
    await userEvent.type(image, 'ghcr.io/aurora/maple:latest');
    await userEvent.type(screen.getByLabelText('Ports it serves'), '8080');
    await userEvent.click(screen.getByRole('button', { name: 'Save' }));
    await waitFor(() => expect(screen.getByLabelText('Image, pinned by digest')).toHaveAccessibleDescription(/must be pinned by digest/));
    const patch = f.calls.find((c) => c.method === 'PATCH')!;
    expect(patch.body).toMatchObject({ try_it: { image: 'ghcr.io/aurora/maple:latest', ports: [8080] } });
  });

  const staffMe = {
    user: { id: 'u9', email: 'staff@b.ca', name: 'Staff', is_staff: true, created_at: '2026-11-22T00:00:00Z' },
    memberships: [{ organization: { id: 'op', name: 'Programme', kind: 'programme', verified: true }, role: 'member' }],
    active_organization_id: 'op',
  };
  const orgs = {
    items: [
      { id: 'org_p', name: 'Laurentian Industries', kind: 'partner', verified: false, created_at: '2026-11-22T00:00:00Z' },
      { id: 'org_v', name: 'Northern GPU Co.', kind: 'vendor', verified: true, created_at: '2026-11-22T00:00:00Z' },
    ],
  };

  it('staff record an offline payment for an organisation chosen by name; field errors show beside their fields', async () => {
    let calls = 0;
    const f = renderPage('/staff/payments', {
      'GET /api/v1/identity/me': () => json(200, staffMe),
      'GET /api/v1/identity/organizations': () => json(200, orgs),
      'POST /api/v1/billing/offline-payments': (c) =>
        ++calls === 1
          ? problem(422, 'validation_failed', 'Some fields are invalid.', { fields: [{ field: 'reference', code: 'max', message: 'too long' }] })
          : json(201, { id: 'pur_1', organization_id: 'org_p', credits: 250, amount_micro: 250_000_000, cad_cents: 25000, method: 'offline', status: 'paid', reference: (c.body as { reference: string }).reference, created_at: '2026-11-22T00:00:00Z' }),
    });
    await screen.findByRole('heading', { name: 'Offline payments', level: 1 });
    // Client-side checks first: nothing is sent without an organisation and a whole number of credits.
    await userEvent.click(screen.getByRole('button', { name: 'Record the payment' }));
    expect(screen.getByLabelText('Credits')).toHaveAttribute('aria-invalid', 'true');
    expect(f.calls.filter((c) => c.method === 'POST')).toHaveLength(0);
    await userEvent.selectOptions(await screen.findByLabelText('Organisation'), screen.getByRole('option', { name: /Laurentian Industries/ }));
    await userEvent.type(screen.getByLabelText('Credits'), '250');
    await userEvent.type(screen.getByLabelText('Reference'), 'WIRE-1');
    await userEvent.click(screen.getByRole('button', { name: 'Record the payment' }));
    expect(await screen.findByRole('alert')).toHaveTextContent('Some fields are invalid.');
    expect(screen.getByLabelText('Reference')).toHaveAttribute('aria-invalid', 'true');
    expect(screen.getByText('too long')).toBeInTheDocument();
    await userEvent.click(screen.getByRole('button', { name: 'Record the payment' }));
    expect(await screen.findByText('250 credits recorded for Laurentian Industries.')).toBeInTheDocument();
    expect(f.calls.filter((c) => c.method === 'POST').at(-1)?.body).toEqual({ organization_id: 'org_p', credits: 250, reference: 'WIRE-1' });
  });

  it('staff see vendor payables, pay a vendor and set its Connect account', async () => {
    const f = renderPage('/staff/payouts', {
      'GET /api/v1/identity/me': () => json(200, staffMe),
      'GET /api/v1/identity/organizations': () => json(200, { items: [orgs.items[1]] }),
      'GET /api/v1/billing/payouts': () =>
        json(200, { items: [{ vendor_org_id: 'org_v', name: 'Northern GPU Co.', earned_micro: 5_000_000, paid_out_micro: 1_000_000, payable_micro: 4_000_000, payable_display: '4.00' }] }),
      'POST /api/v1/billing/payouts': () => json(201, { transfer_id: 't1', vendor_org_id: 'org_v', amount_micro: 4_000_000, amount_display: '4.00', cad_cents: 400, method: 'manual' }),
      'PUT /api/v1/billing/vendors/org_v/connect-account': () => new Response(null, { status: 204 }),
    });
    const table = await screen.findByRole('table', { name: 'What each vendor has earned and is owed' });
    expect(await within(table).findByText('4.00')).toBeInTheDocument();
    expect(within(table).getByText('None (paid manually)')).toBeInTheDocument();
    const pay = screen.getByRole('form', { name: 'Pay a vendor' });
    await userEvent.selectOptions(within(pay).getByLabelText('Vendor'), 'org_v');
    await userEvent.click(within(pay).getByRole('button', { name: 'Pay the vendor' }));
    // Paying out asks first, in a dialog.
    await userEvent.click(within(await screen.findByRole('dialog')).getByRole('button', { name: 'Pay the vendor' }));
    expect(await within(pay).findByText('Paid 4.00 (recorded as a manual payout).')).toBeInTheDocument();
    expect(f.calls.find((c) => c.method === 'POST')?.body).toEqual({ vendor_org_id: 'org_v', amount_micro: 0, reference: '' });
    const connect = screen.getByRole('form', { name: "Set a vendor's Stripe Connect account" });
    await userEvent.selectOptions(within(connect).getByLabelText('Vendor'), 'org_v');
    await userEvent.type(within(connect).getByLabelText('Stripe Connect account'), 'acct_123');
    await userEvent.click(within(connect).getByRole('button', { name: 'Save the account' }));
    expect(await within(connect).findByText('The Connect account is saved.')).toBeInTheDocument();
    expect(f.calls.find((c) => c.method === 'PUT')?.body).toEqual({ stripe_account_id: 'acct_123' });
  });

  it("the vendor's access-request inbox names the requesting organisation", async () => {
    renderPage('/vendor/access-requests', {
      'GET /api/v1/identity/me': () => json(200, vendorMe),
      'GET /api/v1/marketplace/access-requests': () =>
        json(200, {
          items: [
            { id: 'ar1', listing_id: 'lst_1', organization_id: 'org_sme', requester_org_name: 'Maple Robotics', vendor_org_id: 'o1', user_id: 'u2', purpose: 'Pilot', state: 'pending', created_at: '2026-11-22T00:00:00Z', updated_at: '2026-11-22T00:00:00Z' },
          ],
        }),
      'GET /api/v1/marketplace/listings/lst_1': () => json(200, { id: 'lst_1', slug: 'notes', kind: 'dataset', status: 'published', vendor: { id: 'o1', name: 'Prairie Data' }, published_version: version('published'), created_at: '2026-11-22T00:00:00Z', updated_at: '2026-11-22T00:00:00Z' }),
    });
    expect(await screen.findByText('Maple Robotics')).toBeInTheDocument();
    expect(screen.getByText('org_sme')).toBeInTheDocument();
  });
});

describe('shared list scaffolding', () => {
  it('DataTable: a focusable scroll box, caption, headings (false ones left out, num, screen-reader-only) and rows', () => {
    render(
      <DataTable caption="Nodes" captionHidden columns={['Name', false, { label: 'Amount', num: true }, { label: 'Actions', hidden: true }]}>
        <tr>
          <td>a</td>
          <td>1</td>
          <td />
        </tr>
      </DataTable>,
    );
    const table = screen.getByRole('table', { name: 'Nodes' });
    expect(table.parentElement).toHaveAttribute('tabindex', '0');
    const heads = within(table).getAllByRole('columnheader');
    expect(heads.map((h) => h.textContent)).toEqual(['Name', 'Amount', 'Actions']);
    expect(heads[1]).toHaveClass('num');
    expect(heads[2].querySelector('.visually-hidden')).not.toBeNull();
  });
  it('PagedBlock: busy load-more, empty (of the shown items), error with retry, content and load more', async () => {
    const base = { items: [1, 2], loading: false, error: undefined, hasMore: true, loadMore: vi.fn(), reload: vi.fn() };
    const { rerender } = render(<PagedBlock list={{ ...base, loading: true }} emptyText="None">x</PagedBlock>);
    expect(screen.getByRole('button', { name: 'Loading…' })).toBeDisabled();
    rerender(<PagedBlock list={base} shown={[]} emptyText="None">x</PagedBlock>);
    expect(screen.getByText('None')).toBeInTheDocument();
    rerender(<PagedBlock list={base} emptyText="None">content</PagedBlock>);
    expect(screen.getByText('content')).toBeInTheDocument();
    await userEvent.click(screen.getByRole('button', { name: 'Load more' }));
    expect(base.loadMore).toHaveBeenCalled();
    rerender(<PagedBlock list={{ ...base, error: new Error('boom') }} emptyText="None">content</PagedBlock>);
    await userEvent.click(screen.getByRole('button', { name: 'Try again' }));
    expect(base.reload).toHaveBeenCalled();
    rerender(<PagedBlock list={{ ...base, error: new Error('boom') }} emptyText="None" retry={false}>content</PagedBlock>);
    expect(screen.queryByRole('button', { name: 'Try again' })).not.toBeInTheDocument();
  });
});
