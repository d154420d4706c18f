// Every endpoint the UI calls, one function each, grouped by service. Paths and payloads are the services'
// (GET /api/openapi.json lists them); the shapes are in types.ts.

import { api, ApiClient, type Query } from './client';
import type * as T from './types';

const e = encodeURIComponent;

export function identity(c: ApiClient = api) {
  return {
    signup: (input: T.SignupInput) => c.post<T.SignupResult>('/identity/signup', input, { auth: false }),
    login: (email: string, password: string) =>
      c.post<T.LoginResponse>('/identity/login', { email, password }, { auth: false }),
    loginMFA: (mfa_token: string, factor: T.MFAFactor) =>
      c.post<T.TokenPair>('/identity/login/mfa', { mfa_token, ...factor }, { auth: false }),
    mfa: () => c.get<T.MFAStatus>('/identity/mfa'),
    enrolTOTP: (password: string) => c.post<T.MFAEnrolment>('/identity/mfa/totp', { password }),
    confirmTOTP: (code: string) => c.post<T.RecoveryCodes>('/identity/mfa/totp/confirm', { code }),
    regenerateRecoveryCodes: (code: string) => c.post<T.RecoveryCodes>('/identity/mfa/recovery-codes', { code }),
    disableMFA: (password: string, factor: T.MFAFactor) => c.post<void>('/identity/mfa/disable', { password, ...factor }),
    oidcProviders: () => c.get<{ providers: T.OIDCProvider[] }>('/identity/oidc/providers', undefined, { auth: false }),
    /** Trades the sign-in code of the provider's callback for tokens; the browser's sign-in cookie goes with it. */
    oidcExchange: (code: string) => c.post<T.TokenPair>('/identity/oidc/exchange', { code }, { auth: false }),
    logout: (refresh_token: string) => c.post<void>('/identity/logout', { refresh_token }),
    me: () => c.get<T.Me>('/identity/me'),
    sessions: (cursor?: string) => c.get<T.Page<T.UserSession>>('/identity/sessions', { cursor }),
    endSession: (id: string) => c.del<void>(`/identity/sessions/${e(id)}`),
    members: (orgId: string) => c.get<T.Page<T.Member>>(`/identity/organizations/${e(orgId)}/members`),
    invite: (orgId: string, email: string, role: T.OrgRole) =>
      c.post<T.Invitation>(`/identity/organizations/${e(orgId)}/members`, { email, role }),
    changeRole: (orgId: string, userId: string, role: T.OrgRole) =>
      c.patch<T.Member>(`/identity/organizations/${e(orgId)}/members/${e(userId)}`, { role }),
    removeMember: (orgId: string, userId: string) =>
      c.del<void>(`/identity/organizations/${e(orgId)}/members/${e(userId)}`),
    acceptInvitation: (token: string, body: { name?: string; password?: string } = {}) =>
      c.post<T.AcceptedInvitation>(`/identity/invitations/${e(token)}/accept`, body),
    invitations: (orgId: string) => c.get<T.Page<T.InvitationWithState>>(`/identity/organizations/${e(orgId)}/invitations`),
    resendInvitation: (orgId: string, id: string) =>
      c.post<T.InvitationWithState>(`/identity/organizations/${e(orgId)}/invitations/${e(id)}/resend`),
    revokeInvitation: (orgId: string, id: string) => c.del<void>(`/identity/organizations/${e(orgId)}/invitations/${e(id)}`),
    verifyEmail: (token: string) => c.post<T.VerifiedEmail>('/identity/email/verify', { token }, { auth: false }),
    resendVerification: () => c.post<void>('/identity/email/verify/resend'),
    forgotPassword: (email: string) => c.post<void>('/identity/password/forgot', { email }, { auth: false }),
    resetPassword: (token: string, password: string) => c.post<void>('/identity/password/reset', { token, password }, { auth: false }),
    tokens: () => c.get<T.Page<T.ApiToken>>('/identity/tokens'),
    createToken: (name: string, scopes: string[], expires_in_days: number) =>
      c.post<T.CreatedApiToken>('/identity/tokens', { name, scopes, expires_in_days }),
    deleteToken: (id: string) => c.del<void>(`/identity/tokens/${e(id)}`),
    sshKeys: () => c.get<T.Page<T.SSHKey>>('/identity/ssh-keys'),
    addSSHKey: (name: string, public_key: string) => c.post<T.SSHKey>('/identity/ssh-keys', { name, public_key }),
    deleteSSHKey: (id: string) => c.del<void>(`/identity/ssh-keys/${e(id)}`),
    organizations: (q: { kind?: string; verified?: string; cursor?: string; limit?: number }) =>
      c.get<T.Page<T.StaffOrganization>>('/identity/organizations', q),
    verifyOrganization: (orgId: string, verified = true, note = '') =>
      c.post<T.StaffOrganization>(`/identity/organizations/${e(orgId)}/verify`, { verified, note }),
    audit: (q: { cursor?: string; limit?: number; action?: string }) => c.get<T.Page<T.AuditEntry>>('/identity/audit', q),
    deviceRequest: (userCode: string) => c.get<T.DeviceLoginRequest>(`/identity/device/${e(userCode)}`),
    approveDevice: (userCode: string) => c.post<T.DeviceLoginRequest>(`/identity/device/${e(userCode)}/approve`),
    denyDevice: (userCode: string) => c.post<T.DeviceLoginRequest>(`/identity/device/${e(userCode)}/deny`),
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
    /** The caller's vendor organisation's listings in every state. */
    myListings: (cursor?: string) => c.get<T.Page<T.Listing>>('/marketplace/my/listings', { cursor }),
    listing: (id: string) => c.get<T.Listing>(`/marketplace/listings/${e(id)}`),
    versions: (id: string) => c.get<T.Page<T.VersionHistory>>(`/marketplace/listings/${e(id)}/versions`),
    createListing: (input: T.ListingInput) => c.post<T.Listing>('/marketplace/listings', input),
    updateListing: (id: string, patch: T.ContentPatch) => c.patch<T.Listing>(`/marketplace/listings/${e(id)}`, patch),
    newVersion: (id: string, patch: T.ContentPatch = {}) =>
      c.post<T.Listing>(`/marketplace/listings/${e(id)}/versions`, patch),
    submit: (id: string) => c.post<T.Listing>(`/marketplace/listings/${e(id)}/submit`),
    retire: (id: string) => c.post<T.Listing>(`/marketplace/listings/${e(id)}/retire`),
    suspend: (id: string, reason: string) => c.post<T.Listing>(`/marketplace/listings/${e(id)}/suspend`, { reason }),
    artifactPath: (id: string, version: number, name: string) =>
      c.url(`/marketplace/listings/${e(id)}/versions/${version}/artifacts/${e(name)}`),
    reviews: (q: { state?: string; cursor?: string } = {}) => c.get<T.Page<T.ReviewItem>>('/marketplace/reviews', q),
    decide: (versionId: string, decision: T.ReviewDecision, comment: string) =>
      c.post<T.Version>(`/marketplace/reviews/${e(versionId)}/decision`, { decision, comment }),
    ratings: (listingId: string) => c.get<T.Page<T.Rating>>(`/marketplace/listings/${e(listingId)}/reviews`, {}, { auth: false }),
    rate: (listingId: string, stars: number, body: string, display_name: string) =>
      c.post<T.Rating>(`/marketplace/listings/${e(listingId)}/reviews`, { stars, body, display_name }),
    order: (listing_id: string, plan_id: string, quantity: number) =>
      c.post<T.Order>('/marketplace/orders', { listing_id, plan_id, quantity }),
    orders: (cursor?: string) => c.get<T.Page<T.Order>>('/marketplace/orders', { cursor }),
    requestAccess: (listingId: string, purpose: string) =>
      c.post<T.AccessRequest>(`/marketplace/listings/${e(listingId)}/access-requests`, { purpose }),
    /** Requests the caller's organisation made or received. */
    accessRequests: (cursor?: string) => c.get<T.Page<T.AccessRequest>>('/marketplace/access-requests', { cursor }),
    decideAccess: (id: string, decision: 'approve' | 'deny', comment: string) =>
      c.post<T.AccessRequest>(`/marketplace/access-requests/${e(id)}/decision`, { decision, comment }),
    cancelAccess: (id: string) => c.post<T.AccessRequest>(`/marketplace/access-requests/${e(id)}/cancel`),
    entitlements: (cursor?: string) => c.get<T.Page<T.Entitlement>>('/marketplace/entitlements', { cursor }),
    /** A signed, expiring link to the artifact's bytes (a plain link could not carry the bearer token). */
    downloadLink: (artifactId: string) =>
      c.get<T.DownloadLink>(`/marketplace/artifacts/${e(artifactId)}/download`, { redirect: 'false' }),
    audit: (cursor?: string) => c.get<T.Page<T.MarketplaceAuditEntry>>('/marketplace/audit', { cursor }),
  };
}

export function testbed(c: ApiClient = api) {
  return {
    pools: () => c.get<T.Page<T.Pool>>('/testbed/pools'),
    pool: (id: string) => c.get<T.PoolDetail>(`/testbed/pools/${e(id)}`),
    createPool: (input: T.PoolInput) => c.post<T.Pool>('/testbed/pools', input),
    addNode: (poolId: string, input: T.NodeInput) => c.post<T.PoolNode>(`/testbed/pools/${e(poolId)}/nodes`, input),
    /** No new sandboxes on the node; running ones continue. */
    drainNode: (poolId: string, nodeId: string) => c.post<T.PoolNode>(`/testbed/pools/${e(poolId)}/nodes/${e(nodeId)}/drain`),
    /** ready returns a drained node to service; down stops its sandboxes. */
    setNodeHealth: (poolId: string, nodeId: string, health: T.NodeHealth) =>
      c.post<T.PoolNode>(`/testbed/pools/${e(poolId)}/nodes/${e(nodeId)}/health`, { health }),
    /** The pool's site agents and its enrolment tokens: for the pool's vendor admins and staff. */
    agents: (poolId: string) => c.get<T.Page<T.SiteAgent>>(`/testbed/pools/${e(poolId)}/agents`),
    revokeAgent: (poolId: string, agentId: string) => c.del<T.SiteAgent>(`/testbed/pools/${e(poolId)}/agents/${e(agentId)}`),
    agentTokens: (poolId: string) => c.get<T.Page<T.AgentToken>>(`/testbed/pools/${e(poolId)}/agent-tokens`),
    createAgentToken: (poolId: string, note: string) => c.post<T.NewAgentToken>(`/testbed/pools/${e(poolId)}/agent-tokens`, { note }),
    revokeAgentToken: (poolId: string, tokenId: string) =>
      c.del<T.AgentToken>(`/testbed/pools/${e(poolId)}/agent-tokens/${e(tokenId)}`),
    availability: (q: { pool_id?: string; gpu_model?: string; from?: string; to?: string; step?: string }) =>
      c.get<T.Page<T.AvailabilitySlot>>('/testbed/availability', q, { auth: false }),
    templates: () => c.get<T.Page<T.Template>>('/testbed/templates', {}, { auth: false }),
    /** Published compute listings the testbed can launch; with imageListingId each says whether it can run that try-it image. */
    listings: (imageListingId?: string) =>
      imageListingId
        ? c.get<T.Page<T.TestbedListing>>('/testbed/listings', { image_listing_id: imageListingId }) // a restricted model is seen signed in
        : c.get<T.Page<T.TestbedListing>>('/testbed/listings', {}, { auth: false }),
    launch: (input: T.SandboxInput) => c.post<T.Sandbox>('/testbed/sandboxes', input),
    sandboxes: (cursor?: string) => c.get<T.Page<T.Sandbox>>('/testbed/sandboxes', { cursor }),
    sandbox: (id: string) => c.get<T.Sandbox>(`/testbed/sandboxes/${e(id)}`),
    /** The sandbox once it has reached `until` or gone past it, or as it is after `timeout` seconds (at most 25). */
    waitSandbox: (id: string, until: T.SandboxState, timeout = 25) =>
      c.get<T.Sandbox>(`/testbed/sandboxes/${e(id)}`, { wait_until: until, timeout: String(timeout) }),
    stop: (id: string) => c.post<T.Sandbox>(`/testbed/sandboxes/${e(id)}/stop`),
    gpuSamples: (id: string) => c.get<T.SandboxGPUMetrics>(`/testbed/sandboxes/${e(id)}/gpu-samples`),
    extend: (id: string, minutes: number) => c.post<T.Sandbox>(`/testbed/sandboxes/${e(id)}/extend`, { minutes }),
    logsUrl: (id: string) =>
      c.url(`/testbed/sandboxes/${e(id)}/logs`, { access_token: c.tokens.accessToken ?? undefined }),
    /** The sandbox's port through the proxy, with a short-lived token. */
    proxyToken: (id: string) =>
      c.post<{ token: string; expires_at: string; usage?: string }>(`/testbed/sandboxes/${e(id)}/token`),
    terminalUrl: (id: string, loc: { protocol: string; host: string } = window.location) => {
      const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
      const path = c.url(`/testbed/sandboxes/${e(id)}/terminal`, { access_token: c.tokens.accessToken ?? undefined });
      return path.startsWith('http') ? path.replace(/^http/, 'ws') : `${scheme}//${loc.host}${path}`;
    },
    reservations: () => c.get<T.Page<T.Reservation>>('/testbed/reservations'),
    reserve: (input: { listing_id: string; gpu_count: number; starts_at: string; ends_at: string }) =>
      c.post<T.Reservation>('/testbed/reservations', input),
    audit: (cursor?: string) => c.get<T.Page<T.TestbedAuditEntry>>('/testbed/audit', { cursor }),
    cancelReservation: (id: string) => c.post<T.Reservation>(`/testbed/reservations/${e(id)}/cancel`),
  };
}

export function billing(c: ApiClient = api) {
  return {
    wallet: () => c.get<T.Wallet>('/billing/wallet'),
    checkout: (credits: number) => c.post<T.Checkout>('/billing/checkout', { credits }),
    setBudget: (monthly_budget_micro: number) => c.put<T.Wallet>('/billing/budget', { monthly_budget_micro }),
    grants: (q: { organization_id?: string; cursor?: string } = {}) => c.get<T.Page<T.Grant>>('/billing/grants', q),
    audit: (q: { cursor?: string; action?: string }) => c.get<T.Page<T.BillingAuditEntry>>('/billing/audit', q),
    createGrant: (input: T.GrantInput) => c.post<T.Grant>('/billing/grants', input),
    transactions: (cursor?: string) => c.get<T.Page<T.Transaction>>('/billing/transactions', { cursor }),
    usage: (q: { from?: string; to?: string } = {}) => c.get<T.Page<T.UsageRow>>('/billing/usage', q),
    programmeSpend: () => c.get<T.Page<T.ProgrammeSpend>>('/billing/programme/spend'),
    statementCsv: (month: string) =>
      c.request<Response>('GET', `/billing/statements/${e(month)}`, { raw: true, headers: { Accept: 'text/csv' } }),
    /** Vendor admins see their own; staff see every vendor, or one with vendor_org_id. */
    payouts: (q: { vendor_org_id?: string } = {}) => c.get<T.Page<T.VendorPayable>>('/billing/payouts', q),
    payVendor: (input: T.PayoutInput) => c.post<T.Payout>('/billing/payouts', input),
    setConnectAccount: (vendorOrgId: string, stripe_account_id: string) =>
      c.put<void>(`/billing/vendors/${e(vendorOrgId)}/connect-account`, { stripe_account_id }),
    offlinePayment: (input: T.OfflinePaymentInput) => c.post<T.Purchase>('/billing/offline-payments', input),
    prices: () => c.get<T.Page<T.Price>>('/billing/prices', {}, { auth: false }),
    /** What a credit is worth and whether card payments are on (public). */
    settings: () => c.get<T.MoneySettings>('/billing/settings', {}, { auth: false }),
    /** Readable transactions of an organisation (the caller's; staff: any). */
    activity: (org: string, q: T.ActivityQuery = {}) =>
      c.get<T.Page<T.ActivityLine>>(`/billing/orgs/${e(org)}/transactions`, { ...q }),
    activityEntries: (org: string, line: string, cursor?: string) =>
      c.get<T.Page<T.ActivityEntry>>(`/billing/orgs/${e(org)}/transactions/${e(line)}/entries`, { limit: 200, cursor }),
    activityCsv: (org: string, q: T.ActivityQuery = {}) =>
      c.request<Response>('GET', `/billing/orgs/${e(org)}/transactions`, { raw: true, query: { ...q, cursor: undefined, format: 'csv' } }),
  };
}
