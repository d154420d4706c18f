// The staff audit page reads four services' logs, each in its own shape: every one must come out as the same
// table row, with its actor, target and detail.

import { afterEach, describe, expect, it, vi } from 'vitest';
import { fakeFetch, json } from '../test/fakeFetch';
import { auditRows } from './Staff';

afterEach(() => {
  vi.unstubAllGlobals();
});

const at = '2026-12-06T10:00:00Z';
const page = (item: unknown) => () => json(200, { items: [item], next_cursor: 'c2' });

describe('audit rows', () => {
  const f = () =>
    fakeFetch({
      'GET /api/v1/identity/audit': page({ id: 'i1', at, action: 'user.login', action_display: 'Signed in', actor_email: 'a@b.ca',
        target_type: 'user', target_id: 'u1', detail: { ip: '127.0.0.1' } }),
      'GET /api/v1/marketplace/audit': page({ id: 'm1', at, action: 'review.approve', action_display: 'Approved', actor_user_id: 'u-staff',
        actor_org_id: 'programme', listing_id: 'lst_1', target_id: 'ver_1', detail: 'looks good' }),
      'GET /api/v1/testbed/audit': page({ id: 't1', at, action: 'pool.update', action_display: 'Pool updated', actor_user_id: 'u-staff',
        actor_org_id: 'programme', target: 'pool-1', detail: 'max_hours=8' }),
      'GET /api/v1/billing/audit': page({ id: 'b1', at, action: 'grant.create', action_display: 'Grant created', actor_user_id: 'u-staff',
        target: 'grt_1', detail: 'org=sme amount=5000000' }),
    });

  it('gives each service its actor, target and detail', async () => {
    const ff = f();
    vi.stubGlobal('fetch', ff.fetch);
    const want = {
      identity: { actor: 'a@b.ca', target: 'user u1', detail: '{"ip":"127.0.0.1"}' },
      marketplace: { actor: 'u-staff', target: 'lst_1 ver_1', detail: 'looks good' },
      testbed: { actor: 'u-staff', target: 'pool-1', detail: 'max_hours=8' },
      billing: { actor: 'u-staff', target: 'grt_1', detail: 'org=sme amount=5000000' },
    } as const;
    for (const [source, row] of Object.entries(want)) {
      const p = await auditRows(source as keyof typeof want, undefined, '');
      expect(p.next_cursor).toBe('c2');
      expect(p.items).toHaveLength(1);
      expect(p.items[0]).toMatchObject({ at, ...row });
      expect(p.items[0].action_display).not.toBe('');
    }
  });

  it('sends the action filter and the cursor to billing', async () => {
    const ff = f();
    vi.stubGlobal('fetch', ff.fetch);
    await auditRows('billing', 'c2', 'grant.create');
    const url = new URL(ff.calls[0].url, 'http://x');
    expect(url.pathname).toBe('/api/v1/billing/audit');
    expect(url.searchParams.get('action')).toBe('grant.create');
    expect(url.searchParams.get('cursor')).toBe('c2');
  });
});
