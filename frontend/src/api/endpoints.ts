// Every endpoint the UI calls, one function each, grouped by service. Paths are API.md's; payloads are types.ts's.

import { api, ApiClient, type Query } from './client';
import type * as T from './types';

const e = encodeURIComponent;

export function identity(c: ApiClient = api) {
  return {
    signup: (input: T.SignupInput) => c.post<T.SignupResult>('/identity/signup', input, { auth: false }),
    login: (email: string, password: string) =>
      c.post<T.TokenPair>('/identity/login', { email, password }, { auth: false }),
    logout: (refresh_token: string) => c.post<void>('/identity/logout', { refresh_token }),
    me: () => c.get<T.Me>('/identity/me'),
    members: (orgId: string) => c.get<T.Page<T.Member>>(`/identity/organizations/${e(orgId)}/members`),
    invite: (orgId: string, email: string, role: T.OrgRole) =>
      c.post<T.Invitation>(`/identity/organizations/${e(orgId)}/members`, { email, role }),
    acceptInvitation: (token: string) => c.post<T.AcceptedInvitation>(`/identity/invitations/${e(token)}/accept`),
    tokens: () => c.get<T.Page<T.ApiToken>>('/identity/tokens'),
    createToken: (name: string, scopes: string[], expires_in_days: number) =>
      c.post<T.CreatedApiToken>('/identity/tokens', { name, scopes, expires_in_days }),
    deleteToken: (id: string) => c.del<void>(`/identity/tokens/${e(id)}`),
    organizations: (q: { kind?: string; verified?: string; cursor?: string; limit?: number }) =>
      c.get<T.Page<T.Organization>>('/identity/organizations', q),
    verifyOrganization: (orgId: string) => c.post<T.Organization>(`/identity/organizations/${e(orgId)}/verify`),
    audit: (q: { cursor?: string; limit?: number; action?: string }) => c.get<T.Page<T.AuditEntry>>('/identity/audit', q),
  };
}

export interface CatalogueQuery extends Query {
  q?: string;
  kind?: string;
  tag?: string;
  license?: string;
  gpu_model?: string;
  residency?: string;
  vendor?: string;
  sort?: 'relevance' | 'newest' | 'price';
  cursor?: string;
  limit?: number;
}

export function marketplace(c: ApiClient = api) {
  return {
    catalogue: (q: CatalogueQuery) => c.get<T.CataloguePage>('/marketplace/listings', q),
    /** ASSUMED: a vendor's own listings in every state through the catalogue route with `vendor` and `state=all`. */
    myListings: (orgId: string, cursor?: string) =>
      c.get<T.Page<T.Listing>>('/marketplace/listings', { vendor: orgId, state: 'all', cursor }),
    listing: (id: string) => c.get<T.Listing>(`/marketplace/listings/${e(id)}`),
    createListing: (input: T.ListingInput) => c.post<T.Listing>('/marketplace/listings', input),
    updateListing: (id: string, input: Partial<T.ListingInput>) =>
      c.patch<T.Listing>(`/marketplace/listings/${e(id)}`, input),
    newVersion: (id: string, input: Partial<T.ListingInput>) =>
      c.post<T.Version>(`/marketplace/listings/${e(id)}/versions`, input),
    submit: (id: string) => c.post<T.Listing>(`/marketplace/listings/${e(id)}/submit`),
    retire: (id: string) => c.post<T.Listing>(`/marketplace/listings/${e(id)}/retire`),
    suspend: (id: string, reason: string) => c.post<T.Listing>(`/marketplace/listings/${e(id)}/suspend`, { reason }),
    artifactPath: (id: string, version: number, name: string) =>
      c.url(`/marketplace/listings/${e(id)}/versions/${version}/artifacts/${e(name)}`),
    reviews: (q: { state?: string; cursor?: string } = {}) =>
      c.get<T.Page<T.ReviewItem>>('/marketplace/reviews', { state: 'submitted', ...q }),
    decide: (versionId: string, decision: T.ReviewDecision, comment: string) =>
      c.post<unknown>(`/marketplace/reviews/${e(versionId)}/decision`, { decision, comment }),
    order: (listing_id: string, plan_id: string, quantity: number) =>
      c.post<T.Order>('/marketplace/orders', { listing_id, plan_id, quantity }),
    orders: (cursor?: string) => c.get<T.Page<T.Order>>('/marketplace/orders', { cursor }),
    requestAccess: (listingId: string, purpose: string) =>
      c.post<T.AccessRequest>(`/marketplace/listings/${e(listingId)}/access-requests`, { purpose }),
    /** ASSUMED: the vendor's inbox; API.md names only the decision route. */
    accessRequests: (q: { state?: string; cursor?: string } = {}) =>
      c.get<T.Page<T.AccessRequest>>('/marketplace/access-requests', q),
    decideAccess: (id: string, decision: 'approve' | 'deny', comment: string) =>
      c.post<T.AccessRequest>(`/marketplace/access-requests/${e(id)}/decision`, { decision, comment }),
    entitlements: (cursor?: string) => c.get<T.Page<T.Entitlement>>('/marketplace/entitlements', { cursor }),
    /**
     * A plain link cannot carry the Authorization header, so the download passes the access token in the query,
     * like the terminal and the log stream (ASSUMED accepted on this route).
     */
    downloadUrl: (artifactId: string) =>
      c.url(`/marketplace/artifacts/${e(artifactId)}/download`, { access_token: c.tokens.accessToken ?? undefined }),
  };
}

export function testbed(c: ApiClient = api) {
  return {
    pools: () => c.get<T.Page<T.Pool>>('/testbed/pools'),
    createPool: (input: T.PoolInput) => c.post<T.Pool>('/testbed/pools', input),
    addNode: (poolId: string, input: T.NodeInput) =>
      c.post<{ node: T.PoolNode; node_token?: string }>(`/testbed/pools/${e(poolId)}/nodes`, input),
    availability: (q: { gpu_model?: string; from?: string; to?: string }) =>
      c.get<T.Availability>('/testbed/availability', q),
    templates: () => c.get<T.Page<T.Template>>('/testbed/templates'),
    launch: (input: T.SandboxInput) => c.post<T.Sandbox>('/testbed/sandboxes', input),
    sandboxes: (cursor?: string) => c.get<T.Page<T.Sandbox>>('/testbed/sandboxes', { cursor }),
    sandbox: (id: string) => c.get<T.Sandbox>(`/testbed/sandboxes/${e(id)}`),
    stop: (id: string) => c.post<T.Sandbox>(`/testbed/sandboxes/${e(id)}/stop`),
    extend: (id: string, minutes: number) => c.post<T.Sandbox>(`/testbed/sandboxes/${e(id)}/extend`, { minutes }),
    logsUrl: (id: string) =>
      c.url(`/testbed/sandboxes/${e(id)}/logs`, { access_token: c.tokens.accessToken ?? undefined }),
    terminalUrl: (id: string, loc: { protocol: string; host: string } = window.location) => {
      const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
      const path = c.url(`/testbed/sandboxes/${e(id)}/terminal`, { access_token: c.tokens.accessToken ?? undefined });
      return path.startsWith('http') ? path.replace(/^http/, 'ws') : `${scheme}//${loc.host}${path}`;
    },
    reservations: () => c.get<T.Page<T.Reservation>>('/testbed/reservations'),
    reserve: (input: { gpu_model: string; gpu_count: number; start: string; end: string }) =>
      c.post<T.Reservation>('/testbed/reservations', input),
  };
}

export function billing(c: ApiClient = api) {
  return {
    wallet: () => c.get<T.Wallet>('/billing/wallet'),
    checkout: (credits: number) => c.post<T.Checkout>('/billing/checkout', { credits }),
    grants: (cursor?: string) => c.get<T.Page<T.Grant>>('/billing/grants', { cursor }),
    createGrant: (input: T.GrantInput) => c.post<T.Grant>('/billing/grants', input),
    transactions: (cursor?: string) => c.get<T.Page<T.Transaction>>('/billing/transactions', { cursor }),
    /** ASSUMED: `scope=programme` lets staff see every organisation's usage for the spend dashboard. */
    usage: (q: { from?: string; to?: string; scope?: string }) => c.get<T.Page<T.UsageRow>>('/billing/usage', q),
    statementCsv: (month: string) =>
      c.request<Response>('GET', `/billing/statements/${e(month)}`, { raw: true, headers: { Accept: 'text/csv' } }),
    payouts: (cursor?: string) => c.get<T.Page<T.Payout>>('/billing/payouts', { cursor }),
    prices: () => c.get<T.Page<T.Price>>('/billing/prices', {}, { auth: false }),
  };
}
