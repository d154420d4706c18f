// JSON shapes of the Tamarack API as the UI assumes them. Identity shapes are fixed by the contract; the others
// follow API.md's paths and field names with guessed payloads (marked ASSUMED), kept here so that they are easy to
// adjust when the services land. Money: integer micro-credits (`*_micro`) with a `*_display` string.

export interface Page<T> {
  items: T[];
  next_cursor?: string | null;
}

// ---- identity (fixed) ----

export type OrgKind = 'sme' | 'vendor' | 'partner';
export type OrgRole = 'owner' | 'admin' | 'member';

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
}

export interface Organization {
  id: string;
  name: string;
  kind: OrgKind;
  verified: boolean;
  created_at?: string; // ASSUMED on the staff list
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

export interface SignupResult extends TokenPair {
  user: User;
  organization: Organization;
}

// ---- identity (ASSUMED beyond the contract's paths) ----

export interface Member {
  user_id: string;
  email: string;
  name: string;
  role: OrgRole;
  joined_at?: string;
}

export interface Invitation {
  id: string;
  email: string;
  role: OrgRole;
  expires_at?: string;
}

export interface AcceptedInvitation {
  organization: Organization;
  role: OrgRole;
}

export interface ApiToken {
  id: string;
  name: string;
  scopes: string[];
  created_at: string;
  expires_at: string | null;
  last_used_at?: string | null;
}

export interface CreatedApiToken extends ApiToken {
  /** The secret, shown once. */
  token: string;
}

export interface AuditEntry {
  id: string;
  at: string;
  actor_id: string | null;
  actor_email?: string | null;
  organization_id?: string | null;
  action: string;
  target_type?: string;
  target_id?: string;
  detail?: Record<string, unknown>;
}

// ---- marketplace ----

export type ListingKind = 'model' | 'dataset' | 'compute';
export type VersionState = 'draft' | 'submitted' | 'approved' | 'rejected' | 'changes_requested' | 'published';
export type ListingState = VersionState | 'suspended' | 'retired';

export interface VendorRef {
  id: string;
  name: string;
}

export interface ComputeSpec {
  gpu_model: string;
  pool_id?: string | null;
  price_per_gpu_hour_micro: number;
  price_per_gpu_hour_display: string;
}

export interface ListingSummary {
  id: string;
  kind: ListingKind;
  title: string;
  summary: string;
  vendor: VendorRef;
  license: string;
  residency: string;
  tags: string[];
  state?: ListingState;
  gpu_model?: string | null;
  price_display?: string | null;
  rating_average?: number | null;
  rating_count?: number;
  published_at?: string | null;
  updated_at?: string;
}

export interface FacetCount {
  value: string;
  label?: string;
  count: number;
}

export type FacetName = 'kind' | 'tag' | 'license' | 'gpu_model' | 'residency' | 'vendor';

export interface CataloguePage extends Page<ListingSummary> {
  facets?: Partial<Record<FacetName, FacetCount[]>>;
  total?: number;
}

export interface Artifact {
  id?: string;
  name: string;
  size_bytes: number;
  sha256: string;
  uploaded_at?: string;
}

export type PlanKind = 'free' | 'one_time' | 'subscription' | 'per_gpu_hour';

export interface Plan {
  id: string;
  name: string;
  kind: PlanKind;
  description?: string;
  price_micro: number;
  price_display: string;
}

export interface PlanInput {
  id?: string;
  name: string;
  kind: PlanKind;
  description?: string;
  price_micro: number;
}

export interface Version {
  id: string;
  version: number;
  state: VersionState;
  title?: string;
  summary?: string;
  license?: string;
  card_markdown?: string;
  card_html?: string;
  created_at: string;
  submitted_at?: string | null;
  reviewed_at?: string | null;
  review_comment?: string | null;
  artifacts?: Artifact[];
}

export interface Rating {
  id: string;
  stars: number;
  comment?: string;
  organization_name?: string;
  created_at: string;
}

export interface Listing extends ListingSummary {
  state: ListingState;
  gated: boolean;
  card_html: string;
  card_markdown?: string;
  compute?: ComputeSpec | null;
  published_version?: Version | null;
  current_version?: Version | null;
  versions: Version[];
  plans: Plan[];
  ratings?: { average: number | null; count: number; items: Rating[] };
  suspended_reason?: string | null;
}

export interface ListingInput {
  kind: ListingKind;
  title: string;
  summary: string;
  license: string;
  residency: string;
  tags: string[];
  gated: boolean;
  card_markdown: string;
  plans: PlanInput[];
  compute?: { gpu_model: string; pool_id?: string; price_per_gpu_hour_micro: number } | null;
}

export interface ReviewSide {
  title: string;
  summary: string;
  license: string;
  residency: string;
  card_markdown: string;
}

export interface ReviewItem {
  version_id: string;
  listing_id: string;
  kind: ListingKind;
  vendor: VendorRef;
  version: number;
  state: VersionState;
  submitted_at: string;
  age_seconds: number;
  submitted: ReviewSide;
  published?: ReviewSide | null;
}

export type ReviewDecision = 'approve' | 'reject' | 'request_changes';

export type OrderState = 'pending' | 'fulfilled' | 'rejected' | 'cancelled' | 'failed';

export interface Order {
  id: string;
  listing_id: string;
  listing_title?: string;
  plan_id: string;
  plan_name?: string;
  quantity: number;
  state: OrderState;
  total_micro: number;
  total_display: string;
  buyer?: VendorRef;
  created_at: string;
}

export type AccessRequestState = 'pending' | 'approved' | 'denied' | 'cancelled';

export interface AccessRequest {
  id: string;
  listing_id: string;
  listing_title?: string;
  requester: VendorRef;
  purpose: string;
  state: AccessRequestState;
  comment?: string | null;
  created_at: string;
}

export interface Entitlement {
  id: string;
  listing: { id: string; title: string; kind: ListingKind };
  plan_id?: string;
  granted_at: string;
  expires_at?: string | null;
  artifacts: Artifact[];
}

// ---- testbed ----

export type SandboxState = 'requested' | 'scheduled' | 'provisioning' | 'running' | 'stopping' | 'stopped' | 'failed';

export interface Device {
  index: number;
  gpu_model: string;
  health: 'healthy' | 'degraded' | 'failed' | string;
  temperature_c?: number | null;
  utilization_percent?: number | null;
  memory_used_mib?: number | null;
  memory_total_mib?: number | null;
}

export interface PoolNode {
  id: string;
  hostname: string;
  state: string;
  last_seen_at?: string | null;
  devices: Device[];
}

export interface Pool {
  id: string;
  name: string;
  backend: 'local' | 'slurm' | 'kubernetes' | string;
  region: string;
  owner_organization_id?: string | null;
  gpu_models: { gpu_model: string; total: number; free: number }[];
  free_now: number;
  nodes?: PoolNode[];
}

export interface PoolInput {
  name: string;
  backend: string;
  region: string;
}

export interface NodeInput {
  hostname: string;
  gpu_model: string;
  gpu_count: number;
}

export interface AvailabilitySlot {
  gpu_model: string;
  start: string;
  end: string;
  free: number;
  total: number;
}

export interface Availability {
  items: AvailabilitySlot[];
}

export interface Template {
  id: string;
  name: string;
  description?: string;
  /** Ports the template exposes through the gateway, e.g. JupyterLab. */
  ports?: { name: string; port: number }[];
}

export interface SandboxEndpoint {
  name: string;
  url: string;
}

export interface Sandbox {
  id: string;
  listing_id: string;
  state: SandboxState;
  gpu_model: string;
  gpu_count: number;
  template: string;
  duration_minutes?: number;
  node?: { id: string; hostname: string } | null;
  devices?: Device[];
  created_at: string;
  started_at?: string | null;
  expires_at?: string | null;
  stopped_at?: string | null;
  stop_reason?: string | null;
  usage_gpu_seconds?: number;
  charge_micro?: number;
  charge_display?: string;
  hold_display?: string;
  endpoints?: SandboxEndpoint[];
}

export interface SandboxInput {
  listing_id: string;
  gpu_model: string;
  gpu_count: number;
  template: string;
  duration_minutes: number;
}

/** Extension members of the 409 `no_capacity` problem. */
export interface NextFreeSlot {
  start: string;
  end?: string;
  gpu_model?: string;
  gpu_count?: number;
}

export interface Reservation {
  id: string;
  gpu_model: string;
  gpu_count: number;
  start: string;
  end: string;
  state: 'pending' | 'active' | 'completed' | 'cancelled';
}

// ---- billing ----

export interface GrantBalance {
  grant_id: string;
  note?: string;
  remaining_micro: number;
  remaining_display: string;
  expires_at: string | null;
  cofund_percent?: number;
}

export interface Wallet {
  organization_id: string;
  purchased_micro: number;
  purchased_display: string;
  granted_micro: number;
  granted_display: string;
  held_micro: number;
  held_display: string;
  available_micro: number;
  available_display: string;
  grants: GrantBalance[];
}

export interface Checkout {
  checkout_url: string;
  session_id: string;
}

export interface GrantInput {
  organization_id: string;
  amount: number;
  expires_at: string;
  cofund_percent: number;
  cap: number;
  note: string;
}

export interface Grant {
  id: string;
  organization_id: string;
  organization_name?: string;
  amount: number;
  amount_display: string;
  cap: number;
  cap_display: string;
  cofund_percent: number;
  spent_display?: string;
  remaining_display?: string;
  expires_at: string;
  note?: string;
  created_at: string;
}

export interface Transaction {
  id: string;
  created_at: string;
  kind: string;
  description?: string;
  account?: string;
  amount_micro: number;
  amount_display: string;
  state?: 'pending' | 'posted' | 'voided';
}

export interface UsageRow {
  day: string; // yyyy-mm-dd
  gpu_model: string;
  sandbox_id?: string;
  organization_id?: string;
  gpu_seconds: number;
  charge_micro: number;
  charge_display?: string;
  cofunded_micro?: number;
}

export interface Payout {
  id: string;
  period: string;
  source: 'listing' | 'compute' | string;
  listing_id?: string | null;
  listing_title?: string | null;
  gross_micro: number;
  gross_display: string;
  fee_display: string;
  net_display: string;
  state: string;
  created_at: string;
}

export interface Price {
  gpu_model: string;
  pool_id?: string;
  pool_name?: string;
  price_per_gpu_hour_micro: number;
  price_per_gpu_hour_display: string;
}
