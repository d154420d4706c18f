// JSON shapes of the Tamarack API, as the services answer them (services/identity/http.go, marketplace/http.go,
// testbed/http.go, billing/http.go; `GET /api/openapi.json` lists them). Money: integer micro-credits
// (`*_micro`); the UI formats them itself (src/api/money.ts): the API sends no display strings.

export interface Page<T> {
  items: T[];
  next_cursor?: string | null;
}

// ---- identity ----

export type OrgKind = 'sme' | 'vendor' | 'partner';
export type OrgRole = 'owner' | 'admin' | 'member';

/** An OpenID Connect provider to sign in with (GET /identity/oidc/providers). */
export interface OIDCProvider {
  id: string;
  name: string;
  /** Where the browser goes to sign in (the API's redirect to the provider). */
  login_url: string;
}

export interface TokenPair {
  access_token: string;
  refresh_token: string;
  token_type: string;
  expires_in: number;
}

export interface User {
  id: string;
  email: string;
  name: string;
  is_staff: boolean;
  created_at?: string;
  /** In /me: false until the verification e-mail's link is opened (absent from older servers: read as verified). */
  email_verified?: boolean;
}

export interface Organization {
  id: string;
  name: string;
  kind: OrgKind;
  verified: boolean;
}

/** The staff list of organisations. */
export interface StaffOrganization extends Organization {
  created_at: string;
  verified_at?: string;
  verified_by?: string;
  verification_note?: string;
}

export interface Membership {
  organization: Organization;
  role: OrgRole;
}

export interface Me {
  user: User;
  memberships: Membership[];
  active_organization_id: string | null;
}

export interface SignupInput {
  email: string;
  password: string;
  name: string;
  organization: { name: string; kind: OrgKind };
}

/** POST /identity/login: tokens, or (two-step sign-in on) a challenge to trade with a code at POST /identity/login/mfa. */
export type LoginResponse = TokenPair | MFAChallenge;

export interface MFAChallenge {
  mfa_required: true;
  mfa_token: string;
  /** Seconds the challenge lasts (5 minutes; it allows 5 codes). */
  expires_in: number;
}

export function isMFAChallenge(r: LoginResponse): r is MFAChallenge {
  return (r as MFAChallenge).mfa_required === true && typeof (r as MFAChallenge).mfa_token === 'string';
}

/** The second factor: a 6-digit code of the authenticator app, or one unused recovery code. */
export type MFAFactor = { code: string } | { recovery_code: string };

/** GET /identity/sessions: one live sign-in of the user (services/identity/sessions.go). */
export interface UserSession {
  id: string;
  /** Browser and system from the sign-in's user agent ("Firefox on Linux"); empty when unknown. */
  device: string;
  user_agent: string;
  /** The address of the latest use. */
  ip: string;
  sign_in_ip: string;
  created_at: string;
  /** The latest sign-in or refresh. */
  last_used_at: string;
  expires_at: string;
  /** The session of the token making the request. */
  current: boolean;
}

/** GET /identity/mfa */
export interface MFAStatus {
  enabled: boolean;
  /** Enrolled but not confirmed yet. */
  pending: boolean;
  enabled_at?: string;
  recovery_codes_left: number;
  /** Programme staff, or the acting organisation requires it. */
  required: boolean;
}

/** POST /identity/mfa/totp: shown once. */
export interface MFAEnrolment {
  secret: string;
  otpauth_uri: string;
  algorithm: string;
  digits: number;
  period: number;
}

export interface RecoveryCodes {
  recovery_codes: string[];
}

export interface SignupResult extends TokenPair {
  user: User;
  organization: Organization;
}

export interface Member {
  user_id: string;
  email: string;
  name: string;
  role: OrgRole;
  joined_at: string;
}

export interface Invitation {
  id: string;
  organization_id: string;
  email: string;
  role: OrgRole;
  created_at: string;
  expires_at: string;
}

/** An invitation as the organisation's admins list it, with its derived state. */
export interface InvitationWithState extends Invitation {
  state: 'pending' | 'accepted' | 'expired' | 'revoked';
  invited_by: string;
  accepted_at?: string;
  revoked_at?: string;
}

export interface VerifiedEmail {
  user_id: string;
  email: string;
  email_verified: boolean;
  email_verified_at: string;
}

export interface AcceptedInvitation {
  organization: Organization;
  role: OrgRole;
  /** Tokens of the account created by accepting (when not signed in). */
  session?: TokenPair;
}

export interface ApiToken {
  id: string;
  name: string;
  hint: string;
  scopes: string[];
  created_at: string;
  expires_at: string;
  last_used_at?: string;
}

/** An SSH public key on the profile, for the testbed's SSH gateway (docs/ssh.md). */
export interface SSHKey {
  id: string;
  name: string;
  key_type: string;
  public_key: string;
  /** SHA256:…, as ssh-keygen -l prints it. */
  fingerprint: string;
  created_at: string;
  last_used_at?: string | null;
}

export interface CreatedApiToken extends ApiToken {
  /** The secret, shown once. */
  token: string;
}

export interface AuditEntry {
  id: string;
  at: string;
  action: string;
  /** The action named for people, in the language the client asked for (Accept-Language). */
  action_display?: string;
  actor_id?: string;
  actor_email?: string;
  organization_id?: string;
  target_type?: string;
  target_id?: string;
  ip?: string;
  detail?: Record<string, unknown>;
}

// ---- marketplace ----

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

export interface VendorRef {
  id: string;
  name: string;
}

export interface License {
  spdx: string;
  url?: string;
}

export interface ComputeDetails {
  pool_id: string;
  gpu_model: string;
  vram_gb: number;
  devices_per_node: number;
  region: string;
  min_duration_minutes: number;
  max_duration_minutes: number;
}

export interface DatasetDetails {
  format: string;
  size_bytes?: number;
  rows?: number;
  schema?: string;
  sample_preview?: string;
  personal_data?: boolean;
}

export interface ModelDetails {
  framework: string;
  task: string;
  parameters?: number;
  base_model?: string;
  evaluations?: { benchmark: string; metric: string; value: string }[];
}

/** A catalogue search hit. */
export interface CatalogItem {
  id: string;
  slug: string;
  kind: ListingKind;
  title: string;
  summary: string;
  /** French title and summary; "" when the vendor wrote none (show the English ones). */
  title_fr?: string;
  summary_fr?: string;
  vendor: VendorRef;
  tags: string[];
  license: string;
  gpu_model?: string;
  residency: string;
  canadian_owned_ip: boolean;
  gated: boolean;
  price_from_micro: number;
  published_at: string;
  score?: number;
}

export interface FacetCount {
  value: string;
  label?: string;
  count: number;
}

export type FacetName = 'kind' | 'tag' | 'license' | 'gpu_model' | 'residency' | 'vendor';

export interface CataloguePage extends Page<CatalogItem> {
  facets?: Partial<Record<FacetName, FacetCount[]>>;
  total?: number;
}

export interface Artifact {
  id: string;
  name: string;
  size_bytes: number;
  sha256: string;
  content_type?: string;
  created_at?: string;
  download_url?: string;
}

export type PlanKind = 'free' | 'one_time' | 'subscription' | 'per_gpu_hour';

export interface Plan {
  id: string;
  name: string;
  kind: PlanKind;
  price_micro: number;
}

export interface PlanInput {
  id?: string;
  name: string;
  kind: PlanKind;
  price_micro: number;
}

/** The editable content of a listing version. */
export interface Content {
  title: string;
  summary: string;
  /** French title and summary (optional): French readers see them, others the English ones; each falls back to the other. */
  title_fr?: string;
  summary_fr?: string;
  card_markdown: string;
  tags: string[];
  license: License;
  residency: string;
  jurisdiction?: string;
  canadian_owned_ip: boolean;
  visibility: 'public' | 'restricted';
  visible_to: string[];
  gated: boolean;
  model?: ModelDetails;
  dataset?: DatasetDetails;
  compute?: ComputeDetails;
  /** A model's or dataset's "try it" image: runs in a sandbox on a compute listing's pool; `{}` withdraws it. */
  try_it?: TryIt | Record<string, never>;
}

/** An OCI image pinned by digest (registry/repository@sha256:…), the command it runs and the ports it serves. */
export interface TryIt {
  image: string;
  command?: string[];
  ports?: number[];
}

export interface Version extends Content {
  id: string;
  version: number;
  state: VersionState;
  card_html: string;
  plans: Plan[];
  artifacts: Artifact[];
  created_by?: string;
  created_at: string;
  updated_at?: string;
  submitted_at?: string;
  decided_at?: string;
  decided_by?: string;
  /** The reviewer's comment on the decision. */
  comment?: string;
}

export interface Listing {
  id: string;
  slug: string;
  kind: ListingKind;
  status: ListingStatus;
  status_reason?: string;
  vendor: VendorRef;
  published_version?: Version;
  /** The draft, submitted or changes_requested version (its vendor and staff see it). */
  pending_version?: Version;
  rating?: { average: number; count: number };
  /** What the caller may do (GET of one listing only); advice for the UI, the actions still decide. */
  viewer?: ListingViewer;
  /** Models and datasets: the Hugging Face Hub repository ID (vendor/slug) for huggingface_hub and the CLI. */
  hub_repo?: string;
  created_at: string;
  updated_at: string;
}

export interface ListingViewer {
  entitled: boolean;
  can_download: boolean;
  can_rate: boolean;
  can_request_access: boolean;
  /** The caller's organisation's newest access request for the listing. */
  access_request: ViewerAccessRequest | null;
}

export interface ViewerAccessRequest {
  id: string;
  state: AccessRequestState;
  /** The vendor's comment on its decision. */
  note: string;
  created_at: string;
  decided_at: string | null;
}

export interface ListingInput extends Content {
  kind: ListingKind;
  slug: string;
  plans: PlanInput[];
}

export type ContentPatch = Partial<Content> & { plans?: PlanInput[] };

export interface HistoryEntry {
  action: string;
  at: string;
  comment?: string;
  fields?: string[];
  org_id?: string;
  user_id?: string;
}

export interface VersionHistory extends Version {
  history: HistoryEntry[];
}

/** One changed field: from and to are the field's JSON values (null when absent). */
export interface FieldDiff {
  field: string;
  from: unknown;
  to: unknown;
}

export interface ReviewItem {
  version_id: string;
  listing_id: string;
  slug: string;
  kind: ListingKind;
  title: string;
  vendor: VendorRef;
  version: number;
  state: VersionState;
  submitted_at: string;
  age_seconds: number;
  first_review: boolean;
  diff: FieldDiff[];
}

export type ReviewDecision = 'approve' | 'reject' | 'request_changes';

export interface Rating {
  id: string;
  listing_id: string;
  /** The name the rater chose ("Verified buyer" by default): readers never learn who rated. */
  display_name: string;
  /** The caller's organisation wrote it. */
  mine: boolean;
  /** Who rated: only for the rater's organisation and staff. */
  organization_id?: string;
  user_id?: string;
  stars: number;
  body: string;
  created_at: string;
  updated_at: string;
}

export type OrderState = 'pending' | 'fulfilled' | 'rejected' | 'cancelled' | 'failed';

export interface Order {
  id: string;
  buyer_org_id: string;
  vendor_org_id: string;
  listing_id: string;
  plan_id: string;
  plan_kind: PlanKind;
  quantity: number;
  amount_micro: number;
  state: OrderState;
  reason?: string;
  created_at: string;
  updated_at: string;
}

export type AccessRequestState = 'pending' | 'approved' | 'denied' | 'cancelled';

export interface AccessRequest {
  id: string;
  listing_id: string;
  organization_id: string;
  /** The requesting organisation's name (the marketplace's projection of identity's organisations); "" when unknown. */
  requester_org_name?: string;
  vendor_org_id: string;
  user_id: string;
  purpose: string;
  state: AccessRequestState;
  comment?: string;
  created_at: string;
  updated_at: string;
  /** When it was approved or denied. */
  decided_at?: string;
}

export interface Entitlement {
  id: string;
  listing_id: string;
  slug: string;
  title: string;
  /** The listing's French title; "" when none. */
  title_fr?: string;
  kind: ListingKind;
  plan_id?: string;
  source: string;
  source_id?: string;
  created_at: string;
  expires_at?: string;
}

export interface DownloadLink {
  url: string;
  expires_at: string;
}

// ---- testbed ----

export type SandboxState = 'requested' | 'scheduled' | 'provisioning' | 'running' | 'stopping' | 'stopped' | 'failed';

export interface Device {
  id: string;
  index: number;
  uuid?: string;
  gpu_model: string;
  memory_mib?: number;
  mig_profiles?: string[];
  declared?: boolean;
}

export type NodeHealth = 'ready' | 'draining' | 'down';

export interface PoolNode {
  id: string;
  pool_id: string;
  name: string;
  health: NodeHealth | string;
  cpu_millis?: number;
  memory_bytes?: number;
  last_heartbeat_at?: string;
  /** The site agent that registered the node; absent for the platform host's own nodes. */
  agent_id?: string;
  devices: Device[];
}

export interface Pool {
  id: string;
  vendor_org_id: string;
  name: string;
  region: string;
  backend: string;
  settings?: Record<string, string>;
  gpus: { gpu_model: string; total: number; free_now: number }[];
  nodes: number;
  /** Pool managers only: why sandboxes cannot start on the pool's backend here, and how to fix it. */
  backend_problem?: string;
  created_at: string;
  updated_at: string;
}

export interface PoolDetail extends Pool {
  node_list: PoolNode[];
}

export interface PoolInput {
  name: string;
  backend: string;
  region: string;
}

export interface NodeInput {
  name: string;
  devices: { index: number; gpu_model: string; memory_mib?: number }[];
}

/** connected: a heartbeat within the node timeout; unreachable: silent longer; revoked: its enrolment ended. */
export type AgentState = 'connected' | 'unreachable' | 'never_connected' | 'revoked';

/** A site agent of a pool (GET /testbed/pools/{id}/agents): the vendor's own host running sandboxes. */
export interface SiteAgent {
  id: string;
  pool_id: string;
  name: string;
  version: string;
  backend: string;
  /** Why its backend cannot start sandboxes now, as the agent reported it. */
  problem?: string;
  created_at: string;
  last_heartbeat_at: string | null;
  revoked_at: string | null;
  state: AgentState | string;
  /** Its nodes; their `devices` are left empty here (the pool's node_list has them), `devices` counts them all. */
  nodes: PoolNode[];
  devices: number;
}

export type AgentTokenState = 'usable' | 'used' | 'revoked' | 'expired';

/** A one-time enrolment token of a pool, as listed (never the token itself). */
export interface AgentToken {
  id: string;
  pool_id: string;
  note: string;
  created_at: string;
  expires_at: string;
  used_at: string | null;
  /** The agent that enrolled with it, once used. */
  agent_id?: string;
  revoked_at: string | null;
  state: AgentTokenState | string;
}

/** A token just created: the only answer that carries the token and the command to run on the agent's host. */
export interface NewAgentToken extends AgentToken {
  token: string;
  command: string;
}

export interface AvailabilitySlot {
  pool_id: string;
  gpu_model: string;
  start: string;
  end: string;
  free: number;
  total: number;
}

export interface Template {
  name: string;
  title: string;
  description?: string;
  notes?: string;
  command?: string[];
  ports?: number[];
  network?: boolean;
  idle_signal?: string;
  idle_timeout_minutes?: number;
  /** The template's image: a built-in name ("shell", "python") or a reference pinned by digest. */
  image?: string;
  cpu_millis_per_gpu?: number;
  memory_bytes_per_gpu?: number;
}

/** A published compute listing as the testbed knows it (GET /testbed/listings). */
export interface TestbedListing {
  id: string;
  vendor_org_id: string;
  title: string;
  pool_id: string;
  gpu_model: string;
  region: string;
  min_duration_minutes: number;
  max_duration_minutes: number;
  price_per_gpu_hour_micro: number;
  gated?: boolean;
  access_required?: boolean;
  /** Asked with image_listing_id: whether this listing's pool allows that listing's try-it image. */
  image_allowed?: boolean;
  /** The GPU counts a sandbox may ask for (one node's worth at most), each with how many could start now. */
  gpu_counts?: { gpu_count: number; free_now: number }[];
  /** Each sandbox's disk (its home's quota) where the pool's backend sets one the testbed knows. */
  disk_bytes?: number;
}

/** A sandbox's GPU utilisation and memory over time, or why nothing measures them. */
export interface SandboxGPUMetrics {
  measured: boolean;
  not_measured_reason?: 'declared_devices' | 'no_devices' | 'no_sampler' | string;
  items: { at: string; utilization_pct: number | null; memory_used_mib: number; memory_total_mib: number }[];
}

/** How far a provisioning sandbox is: its image is downloaded (pulling), written out (unpacking), then started. */
export interface SandboxProgress {
  phase: 'pulling' | 'unpacking' | 'starting' | string;
  done_bytes: number;
  total_bytes: number;
  image_digest?: string;
  updated_at: string;
}

export interface Sandbox {
  id: string;
  organization_id: string;
  listing_id: string;
  pool_id?: string;
  node_id?: string;
  /** The site agent that runs it (absent on the platform host's own nodes). */
  agent_id?: string;
  /** Set while that agent does not answer: the sandbox may still run, but is not metered until it answers. */
  unreachable_since?: string | null;
  backend?: string;
  state: SandboxState;
  message?: string;
  gpu_model: string;
  gpu_count: number;
  mig_profile?: string;
  template: string;
  /** The template's image on pools that start sandboxes from images, and the digest of the image started. */
  image?: string;
  image_digest?: string;
  /** The model or dataset listing whose try-it image the sandbox runs. */
  image_listing_id?: string;
  progress?: SandboxProgress | null;
  cpu_millis?: number;
  memory_bytes?: number;
  duration_minutes: number;
  devices?: { id: string; index: number; uuid?: string; gpu_model: string; declared?: boolean }[];
  ports?: number[];
  proxy_urls?: string[];
  terminal_url?: string;
  logs_url?: string;
  price_per_gpu_hour_micro?: number;
  usage_millis?: number;
  charge_micro?: number;
  stop_reason?: string;
  created_at: string;
  started_at?: string;
  expires_at?: string;
  ended_at?: string;
}

export interface SandboxInput {
  listing_id: string;
  gpu_model?: string;
  gpu_count: number;
  /** Required unless image_listing_id is given (then the try-it profile by default). */
  template?: string;
  duration_minutes: number;
  /** Run this model's or dataset's try-it image instead of the template's. */
  image_listing_id?: string;
}

/** Extension members of the 409 `no_capacity` problem. */
export interface NextFreeSlot {
  next_free_at?: string;
}

export interface Reservation {
  id: string;
  listing_id: string;
  pool_id: string;
  gpu_model: string;
  gpu_count: number;
  starts_at: string;
  ends_at: string;
  state: 'pending' | 'active' | 'completed' | 'cancelled' | string;
  created_at: string;
}

// ---- billing ----

export interface GrantBalance {
  grant_id: string;
  note?: string;
  amount_micro: number;
  balance_micro: number;
  expires_at: string;
  expired: boolean;
  cofund_percent: number;
  cap_micro: number;
  cofunded_micro: number;
  /** The organisation is not verified: the grant is not spendable (nor co-funds) until it is. */
  suspended?: boolean;
}

export interface Wallet {
  organization_id: string;
  purchased_micro: number;
  granted_micro: number;
  held_micro: number;
  available_micro: number;
  grants: GrantBalance[];
  monthly_budget_micro?: number;
  month_spent_micro?: number;
  payable_micro?: number;
  spend_order?: string;
}

export interface Checkout {
  purchase_id: string;
  session_id: string;
  checkout_url: string;
  credits: number;
  cad_cents: number;
}

export interface GrantInput {
  organization_id: string;
  amount_micro: number;
  expires_at: string;
  cofund_percent: number;
  cap_micro: number;
  note: string;
}

export interface Grant {
  id: string;
  organization_id: string;
  amount_micro: number;
  cap_micro: number;
  cofund_percent: number;
  cofunded_micro: number;
  expires_at: string;
  expired: boolean;
  note?: string;
  created_by?: string;
  created_at: string;
}

/** A ledger line of one of the organisation's accounts. */
export interface Transaction {
  transfer_id: string;
  at: string;
  kind: string;
  phase: string;
  account: string;
  counterparty: string;
  amount_micro: number;
  ref?: string;
}

export interface UsageRow {
  day: string; // yyyy-mm-dd
  gpu_model: string;
  sandbox_id?: string;
  millis: number;
  charge_micro: number;
  cofunded_micro?: number;
  shortfall_micro?: number;
}

export interface ProgrammeSpend {
  organization_id: string;
  name: string;
  granted_micro: number;
  cofunded_micro: number;
  spent_micro: number;
  returned_micro: number;
  remaining_micro: number;
  total_micro: number;
}

export interface VendorPayable {
  vendor_org_id: string;
  name: string;
  earned_micro: number;
  paid_out_micro: number;
  payable_micro: number;
  connect_account?: string;
}

export interface PayoutInput {
  vendor_org_id: string;
  /** 0 pays the whole payable balance. */
  amount_micro: number;
  reference: string;
}

export interface Payout {
  transfer_id: string;
  vendor_org_id: string;
  amount_micro: number;
  cad_cents: number;
  method: 'stripe_connect' | 'manual' | string;
  stripe_transfer_id?: string;
}

export interface OfflinePaymentInput {
  organization_id: string;
  credits: number;
  reference: string;
}

export interface Purchase {
  id: string;
  organization_id: string;
  credits: number;
  amount_micro: number;
  cad_cents: number;
  method: string;
  status: string;
  reference: string;
  created_at: string;
}

export interface Price {
  listing_id: string;
  title: string;
  vendor_org_id: string;
  pool_id: string;
  region: string;
  gpu_model: string;
  price_per_gpu_hour_micro: number;
}

export interface Statement {
  organization_id: string;
  month: string;
  opening_micro: number;
  credits_micro: number;
  debits_micro: number;
  closing_micro: number;
  lines: Transaction[];
}

/** A device login (the CLI's `tamarack login`) as the /device page shows it: GET /identity/device/{user_code}. */
export interface DeviceLoginRequest {
  /** XXXX-XXXX */
  user_code: string;
  /** As the client named itself ("tamarack CLI on build-01"); may be empty. */
  client_name: string;
  /** The client's program and system, from its user agent; may be empty. */
  device: string;
  /** The address the request came from. */
  ip: string;
  status: 'pending' | 'approved' | 'denied';
  created_at: string;
  expires_at: string;
}

/** GET /billing/settings: what a credit is worth and whether card payments are on. */
export interface MoneySettings {
  credit_value: { currency: string; amount: string; micro: number };
  card_payments: boolean;
  card_currency?: string;
  how_to_get_credits: string;
}

export type ActivityKind = 'usage' | 'purchase' | 'grant' | 'grant_expiry' | 'refund' | 'order' | 'payout' | 'earning';

/** A readable transaction line: usage per sandbox per UTC day, or one purchase, grant, refund, order, payout. */
export interface ActivityLine {
  id: string;
  kind: ActivityKind;
  date: string; // yyyy-mm-dd, UTC
  at: string;
  amount_micro: number;
  sandbox_id?: string;
  listing_id?: string;
  listing_title?: string;
  gpu_model?: string;
  gpu_count?: number;
  duration_ms?: number;
  rate_micro?: number;
  gross_micro?: number;
  cofunded_micro?: number;
  shortfall_micro?: number;
  net_micro?: number;
  entries: number;
  ref?: string;
}

/** One metered sample or ledger entry behind an ActivityLine. */
export interface ActivityEntry {
  id: string;
  at: string;
  seq?: number;
  duration_ms?: number;
  gross_micro?: number;
  cofunded_micro?: number;
  shortfall_micro?: number;
  amount_micro: number;
  account?: string;
  counterparty?: string;
  batch_id?: string;
  ref?: string;
}

export interface ActivityQuery {
  kind?: string;
  from?: string;
  to?: string;
  sandbox_id?: string;
  listing_id?: string;
  sort?: 'date' | '-date';
  cursor?: string;
}
