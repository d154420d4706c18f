// The JSON shapes of the Tamarack API, GENERATED: schema.d.ts is openapi-typescript's output from the served
// OpenAPI document (sdk/openapi.json; `go generate ./sdk/...` regenerates both, and src/api/schema.test.ts fails
// when it is stale). This file names those shapes for the pages; what the document cannot say (its strings
// carry no enumerations) is written here as literal unions, and a few shapes are narrowed with them.
import type { components } from './schema';

type Schemas = components['schemas'];

export interface Page<T> {
  items: T[];
  next_cursor?: string | null;
}

// ---- identity ----

export type OrgKind = 'sme' | 'vendor' | 'partner';
export type OrgRole = 'owner' | 'admin' | 'member';

/** An OpenID Connect provider to sign in with (GET /identity/oidc/providers). */
export type OIDCProvider = Schemas['OIDCProvider'];

export type TokenPair = Schemas['SessionTokens'];

export type User = Schemas['User'];

export type Organization = Schemas['Organization'];

/** The staff list of organisations. */
export type StaffOrganization = Schemas['StaffOrganization'];

export type Membership = Schemas['Membership'];

export type Me = Schemas['MeResponse'];

export type SignupInput = Schemas['SignupRequest'];

/** POST /identity/login: tokens, or (two-step sign-in on) a challenge to trade with a code at POST /identity/login/mfa. */
export type LoginResponse = TokenPair | MFAChallenge;

export type MFAChallenge = Required<Pick<Schemas['LoginResponse'], 'mfa_token' | 'expires_in'>> & { mfa_required: true };

export function isMFAChallenge(r: LoginResponse): r is MFAChallenge {
  return (r as MFAChallenge).mfa_required === true && typeof (r as MFAChallenge).mfa_token === 'string';
}

/** The second factor: a 6-digit code of the authenticator app, or one unused recovery code. */
export type MFAFactor = { code: string } | { recovery_code: string };

/** GET /identity/sessions: one live sign-in of the user (services/identity/sessions.go). */
export type UserSession = Schemas['Session'];

/** GET /identity/mfa */
export type MFAStatus = Schemas['MFAStatus'];

/** POST /identity/mfa/totp: shown once. */
export type MFAEnrolment = Schemas['MFAEnrolment'];

export type RecoveryCodes = Schemas['RecoveryCodes'];

export type SignupResult = Schemas['SignupResponse'];

export type Member = Schemas['Member'];

export type Invitation = Schemas['Invitation'];

/** An invitation as the organisation's admins list it, with its derived state. */
export type InvitationWithState = Schemas['InvitationWithState'];

export type VerifiedEmail = Schemas['VerifiedEmail'];

export type AcceptedInvitation = Schemas['AcceptInvitationResponse'];

export type ApiToken = Schemas['APIToken'];

/** An SSH public key on the profile, for the testbed's SSH gateway (docs/ssh.md). */
export type SSHKey = Schemas['SshKey'];

export type CreatedApiToken = Schemas['CreatedAPIToken'];

export type AuditEntry = Schemas['IdentityAuditEntry'];
export type MarketplaceAuditEntry = Schemas['MarketplaceAuditEntry'];
export type TestbedAuditEntry = Schemas['TestbedAuditEntry'];
export type BillingAuditEntry = Schemas['BillingAuditEntry'];

export type ListingKind = 'model' | 'dataset' | 'compute';
export type VersionState =
  | 'draft'
  | 'submitted'
  | 'changes_requested'
  | 'rejected'
  | 'approved'
  | 'published'
  | 'superseded';
export type ListingStatus = 'draft' | 'published' | 'suspended' | 'retired';

export type VendorRef = Schemas['Vendor'];

export type License = Schemas['License'];

export type ComputeDetails = Schemas['ComputeDetails'];

export type DatasetDetails = Schemas['DatasetDetails'];

export type ModelDetails = Schemas['ModelDetails'];

/** A catalogue search hit. */
export type CatalogItem = Schemas['CatalogItem'];

export type FacetCount = Schemas['FacetValue'];

export type FacetName = 'kind' | 'tag' | 'license' | 'gpu_model' | 'residency' | 'vendor';

export type CataloguePage = Schemas['SearchResult'];

export type Artifact = Schemas['Artifact'];

export type PlanKind = 'free' | 'one_time' | 'subscription' | 'per_gpu_hour';

export type Plan = Schemas['Plan'] & { kind: PlanKind };

export type PlanInput = Schemas['PlanInput'];

/** The editable content of a listing version. */
export type Content = Schemas['ContentPatch'];

/** An OCI image pinned by digest (registry/repository@sha256:…), the command it runs and the ports it serves. */
export type TryIt = Schemas['TryIt'];

export type Version = Omit<Schemas['Version'], 'state' | 'plans'> & { state: VersionState; plans: Plan[] };

export type Listing = Omit<Schemas['Listing'], 'kind' | 'status' | 'published_version' | 'pending_version'> & {
  kind: ListingKind;
  status: ListingStatus;
  published_version?: Version | null;
  pending_version?: Version | null;
};

export type ListingViewer = Schemas['Viewer'];

export type ViewerAccessRequest = Schemas['ViewerAccessRequest'];

export type ListingInput = Schemas['CreateListingRequest'];

export type ContentPatch = Schemas['ContentPatch'];

export type HistoryEntry = Schemas['VersionHistoryEntry'];

export type VersionHistory = Schemas['VersionHistory'];

/** One changed field: from and to are the field's JSON values (null when absent). */
export type FieldDiff = Schemas['FieldDiff'];

export type ReviewItem = Schemas['ReviewQueueItem'];

export type ReviewDecision = 'approve' | 'reject' | 'request_changes';

export type Rating = Schemas['ListingReview'];

export type OrderState = 'pending' | 'fulfilled' | 'rejected' | 'cancelled' | 'failed';

export type Order = Schemas['Order'] & { state: OrderState };

export type AccessRequestState = 'pending' | 'approved' | 'denied' | 'cancelled';

export type AccessRequest = Schemas['AccessRequest'] & { state: AccessRequestState };

export type Entitlement = Schemas['Entitlement'];

export type DownloadLink = Schemas['DownloadLink'];

export type SandboxState = 'requested' | 'scheduled' | 'provisioning' | 'running' | 'stopping' | 'stopped' | 'failed';

export type Device = Schemas['Device'];

export type NodeHealth = 'ready' | 'draining' | 'down';

export type PoolNode = Schemas['Node'];

export type Pool = Schemas['Pool'];

export type PoolDetail = Schemas['PoolDetail'];

export type PoolInput = Schemas['CreatePoolRequest'];

export type NodeInput = Schemas['AddNodeRequest'];

/** connected: a heartbeat within the node timeout; unreachable: silent longer; revoked: its enrolment ended. */
export type AgentState = 'connected' | 'unreachable' | 'never_connected' | 'revoked';

/** A site agent of a pool (GET /testbed/pools/{id}/agents): the vendor's own host running sandboxes. */
export type SiteAgent = Schemas['SiteAgent'];

export type AgentTokenState = 'usable' | 'used' | 'revoked' | 'expired';

/** A one-time enrolment token of a pool, as listed (never the token itself). */
export type AgentToken = Schemas['AgentToken'];

/** A token just created: the only answer that carries the token and the command to run on the agent's host. */
export type NewAgentToken = Schemas['NewAgentToken'];

export type AvailabilitySlot = Schemas['Availability'];

export type Template = Schemas['Template'];

/** A published compute listing as the testbed knows it (GET /testbed/listings). */
export type TestbedListing = Schemas['ComputeListing'];

/** A sandbox's GPU utilisation and memory over time, or why nothing measures them. */
export type SandboxGPUMetrics = Schemas['SandboxGPUMetrics'];

/** How far a provisioning sandbox is: its image is downloaded (pulling), written out (unpacking), then started. */
export type SandboxProgress = Schemas['Progress'];

export type Sandbox = Schemas['Sandbox'] & { state: SandboxState };

export type SandboxInput = Schemas['LaunchSandboxRequest'];

export type Reservation = Schemas['Reservation'];

export type GrantBalance = Schemas['GrantBalance'];

export type Wallet = Schemas['Wallet'];

export type Checkout = Schemas['Checkout'];

export type GrantInput = Schemas['GrantRequest'];

export type Grant = Schemas['Grant'];

/** A ledger line of one of the organisation's accounts. */
export type Transaction = Schemas['Line'];

export type UsageRow = Schemas['UsageRow'];

export type ProgrammeSpend = Schemas['ProgrammeSpend'];

export type VendorPayable = Schemas['VendorPayable'];

export type PayoutInput = Schemas['PayoutInput'];

export type Payout = Schemas['Payout'];

export type OfflinePaymentInput = Schemas['OfflineRequest'];

export type Purchase = Schemas['Purchase'];

export type Price = Schemas['PriceRow'];

export type Statement = Schemas['Statement'];

/** A device login (the CLI's `tamarack login`) as the /device page shows it: GET /identity/device/{user_code}. */
export type DeviceLoginRequest = Schemas['DeviceLoginRequest'];

/** GET /billing/settings: what a credit is worth and whether card payments are on. */
export type MoneySettings = Schemas['MoneySettings'];

export type ActivityKind = 'usage' | 'purchase' | 'grant' | 'grant_expiry' | 'refund' | 'order' | 'payout' | 'earning';

/** A readable transaction line: usage per sandbox per UTC day, or one purchase, grant, refund, order, payout. */
export type ActivityLine = Schemas['ActivityLine'];

/** One metered sample or ledger entry behind an ActivityLine. */
export type ActivityEntry = Schemas['ActivityEntry'];

export interface ActivityQuery {
  kind?: string;
  from?: string;
  to?: string;
  sandbox_id?: string;
  listing_id?: string;
  sort?: 'date' | '-date';
  cursor?: string;
}
