import { describe, expect, it, vi } from 'vitest';
import { ApiClient, buildQuery } from './client';
import { ApiError, parseProblem } from './problem';
import { REFRESH_KEY, TokenStore } from './tokens';
import { fakeFetch, json, problem } from '../test/fakeFetch';

function client(routes: Parameters<typeof fakeFetch>[0], access: string | null = 'a1', refresh: string | null = 'r1') {
  const f = fakeFetch(routes);
  const tokens = new TokenStore(localStorage);
  if (access) tokens.set(access, refresh);
  else if (refresh) localStorage.setItem(REFRESH_KEY, refresh);
  const onSessionExpired = vi.fn();
  const c = new ApiClient({ fetch: f.fetch, tokens, onSessionExpired });
  return { c, calls: f.calls, tokens, onSessionExpired };
}

describe('parseProblem', () => {
  it('reads a problem+json body with field errors', async () => {
    const res = problem(422, 'validation_failed', 'The request has invalid fields.', {
      detail: '2 invalid field(s)',
      fields: [
        { field: 'email', code: 'invalid', message: 'not an email address' },
        { field: 'organization.name', code: 'required', message: 'required' },
      ],
    });
    const p = await parseProblem(res);
    expect(p.code).toBe('validation_failed');
    expect(p.status).toBe(422);
    expect(p.detail).toBe('2 invalid field(s)');
    const e = new ApiError(p);
    expect(e.fieldErrors()).toEqual({ email: 'not an email address', 'organization.name': 'required' });
    expect(e.message).toBe('The request has invalid fields.: 2 invalid field(s)');
  });

  it('keeps extension members such as next_free_slot', async () => {
    const p = await parseProblem(problem(409, 'no_capacity', 'No free devices.', { next_free_slot: { start: '2030-01-01T10:00:00Z' } }));
    expect(p.next_free_slot).toEqual({ start: '2030-01-01T10:00:00Z' });
  });

  it('turns a non-problem answer into a generic problem', async () => {
    const p = await parseProblem(new Response('<html>bad gateway</html>', { status: 502, statusText: 'Bad Gateway', headers: { 'content-type': 'text/html' } }));
    expect(p).toMatchObject({ status: 502, code: 'http_502', title: 'Bad Gateway', fields: [] });
  });

  it('survives a JSON body that is not valid JSON', async () => {
    const p = await parseProblem(new Response('{', { status: 500, headers: { 'content-type': 'application/problem+json' } }));
    expect(p.code).toBe('http_500');
  });
});

describe('ApiClient', () => {
  it('sends the bearer token and JSON body and parses the answer', async () => {
    const { c, calls } = client({ 'POST /api/v1/marketplace/orders': () => json(201, { id: 'ord_1', state: 'pending' }) });
    const o = await c.post<{ id: string }>('/marketplace/orders', { listing_id: 'l', plan_id: 'p', quantity: 1 });
    expect(o.id).toBe('ord_1');
    expect(calls[0].headers.Authorization).toBe('Bearer a1');
    expect(calls[0].headers['Content-Type']).toBe('application/json');
    expect(calls[0].body).toEqual({ listing_id: 'l', plan_id: 'p', quantity: 1 });
  });

  it('asks for answers in the UI language (Accept-Language)', async () => {
    const f = fakeFetch({ 'GET /api/v1/testbed/templates': () => json(200, { items: [] }) });
    let lang = 'fr';
    const c = new ApiClient({ fetch: f.fetch, tokens: new TokenStore(localStorage), language: () => lang });
    await c.get('/testbed/templates', undefined, { auth: false });
    lang = 'en';
    await c.get('/testbed/templates', undefined, { auth: false });
    expect(f.calls[0].headers['Accept-Language']).toBe('fr, en;q=0.5');
    expect(f.calls[1].headers['Accept-Language']).toBe('en');
  });

  it('does not send the token on unauthenticated calls', async () => {
    const { c, calls } = client({ 'POST /api/v1/identity/login': () => json(200, { access_token: 'x', refresh_token: 'y' }) });
    await c.post('/identity/login', { email: 'a', password: 'b' }, { auth: false });
    expect(calls[0].headers.Authorization).toBeUndefined();
  });

  it('throws ApiError with the problem', async () => {
    const { c } = client({ 'GET /api/v1/billing/wallet': () => problem(403, 'forbidden', 'Your role does not allow this.') });
    await expect(c.get('/billing/wallet')).rejects.toMatchObject({ code: 'forbidden', status: 403 });
  });

  it('returns undefined for 204', async () => {
    const { c } = client({ 'POST /api/v1/identity/logout': () => new Response(null, { status: 204 }) });
    await expect(c.post('/identity/logout', { refresh_token: 'r1' })).resolves.toBeUndefined();
  });

  it('refreshes once on 401 and retries with the new token', async () => {
    let meCalls = 0;
    const { c, calls, tokens } = client({
      'GET /api/v1/identity/me': (call) => {
        meCalls++;
        return call.headers.Authorization === 'Bearer a2' ? json(200, { ok: true }) : problem(401, 'unauthorized', 'Sign in first.');
      },
      'POST /api/v1/identity/refresh': (call) => {
        expect(call.body).toEqual({ refresh_token: 'r1' });
        return json(200, { access_token: 'a2', refresh_token: 'r2', token_type: 'Bearer', expires_in: 900 });
      },
    });
    await expect(c.get('/identity/me')).resolves.toEqual({ ok: true });
    expect(meCalls).toBe(2);
    expect(calls.map((x) => `${x.method} ${new URL(x.url, 'http://h').pathname}`)).toEqual([
      'GET /api/v1/identity/me',
      'POST /api/v1/identity/refresh',
      'GET /api/v1/identity/me',
    ]);
    expect(tokens.accessToken).toBe('a2');
    expect(localStorage.getItem(REFRESH_KEY)).toBe('r2');
  });

  it('retries only once: a second 401 is the caller’s error', async () => {
    let refreshes = 0;
    const { c } = client({
      'GET /api/v1/identity/me': () => problem(401, 'unauthorized', 'Sign in first.'),
      'POST /api/v1/identity/refresh': () => {
        refreshes++;
        return json(200, { access_token: `a${refreshes + 1}`, refresh_token: `r${refreshes + 1}` });
      },
    });
    await expect(c.get('/identity/me')).rejects.toMatchObject({ status: 401 });
    expect(refreshes).toBe(1);
  });

  it('shares one refresh between concurrent 401s (a rotated token is never sent twice)', async () => {
    let refreshes = 0;
    const { c } = client({
      'GET /api/v1/billing/wallet': (call) => (call.headers.Authorization === 'Bearer a2' ? json(200, { w: 1 }) : problem(401, 'unauthorized', 'x')),
      'GET /api/v1/identity/me': (call) => (call.headers.Authorization === 'Bearer a2' ? json(200, { m: 1 }) : problem(401, 'unauthorized', 'x')),
      'POST /api/v1/identity/refresh': async () => {
        refreshes++;
        await new Promise((r) => setTimeout(r, 5));
        return json(200, { access_token: 'a2', refresh_token: 'r2' });
      },
    });
    const [a, b] = await Promise.all([c.get('/billing/wallet'), c.get('/identity/me')]);
    expect(a).toEqual({ w: 1 });
    expect(b).toEqual({ m: 1 });
    expect(refreshes).toBe(1);
  });

  it('ends the session when the refresh token is refused', async () => {
    const { c, tokens, onSessionExpired } = client({
      'GET /api/v1/identity/me': () => problem(401, 'unauthorized', 'Sign in first.'),
      'POST /api/v1/identity/refresh': () => problem(401, 'refresh_reused', 'The refresh token was already used.'),
    });
    await expect(c.get('/identity/me')).rejects.toMatchObject({ status: 401 });
    expect(tokens.accessToken).toBeNull();
    expect(localStorage.getItem(REFRESH_KEY)).toBeNull();
    expect(onSessionExpired).toHaveBeenCalledOnce();
  });

  it('mints an access token first after a reload (only the refresh token survives)', async () => {
    const { c, calls } = client(
      {
        'POST /api/v1/identity/refresh': () => json(200, { access_token: 'a9', refresh_token: 'r9' }),
        'GET /api/v1/identity/me': (call) => json(200, { auth: call.headers.Authorization }),
      },
      null,
      'r1',
    );
    await expect(c.get('/identity/me')).resolves.toEqual({ auth: 'Bearer a9' });
    expect(calls).toHaveLength(2);
  });

  it('reports a network failure as a problem', async () => {
    const c = new ApiClient({
      fetch: (() => Promise.reject(new TypeError('Failed to fetch'))) as typeof fetch,
      tokens: new TokenStore(localStorage),
    });
    const err = await c.get('/marketplace/listings').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).code).toBe('network_error');
  });
});

describe('buildQuery', () => {
  it('drops empty values and repeats arrays', () => {
    expect(buildQuery({ q: 'llm', kind: '', cursor: undefined, limit: 20, tag: ['a', 'b'] })).toBe('?q=llm&limit=20&tag=a&tag=b');
    expect(buildQuery({})).toBe('');
  });
});
