// Shapes of the chart aggregates and documents of billing and the testbed (GET /api/openapi.json has them).
// Amounts are integer micro-credits; time is integer device-milliseconds; days are UTC calendar days (yyyy-mm-dd).

export interface SandboxUsage {
  sandbox_id: string;
  listing_id: string;
  listing_title: string;
  gpu_model: string;
  millis: number;
  charge_micro: number;
  cofunded_micro: number;
  shortfall_micro: number;
  paid_micro: number;
}

export interface ListingSpend {
  listing_id: string;
  listing_title: string;
  millis: number;
  charge_micro: number;
  cofunded_micro: number;
  paid_micro: number;
}

export interface SpendDay {
  day: string;
  charge_micro: number;
  cofunded_micro: number;
  paid_micro: number;
  month_to_date_micro: number;
}

export interface SpendChart {
  from: string;
  to: string;
  monthly_budget_micro: number;
  days: SpendDay[];
  by_sandbox: SandboxUsage[];
  by_listing: ListingSpend[];
}

export interface EarningsChart {
  from: string;
  to: string;
  days: { day: string; usage_micro: number; orders_micro: number }[];
}

export interface ProgrammeChart {
  from: string;
  to: string;
  days: { day: string; granted_micro: number; grant_spent_micro: number; cofunded_micro: number }[];
}

export interface Utilisation {
  from: string;
  to: string;
  pool_ids: string[];
  days: { day: string; used_device_ms: number; available_device_ms: number }[];
}

export interface PurchaseRow {
  id: string;
  credits: number;
  amount_micro: number;
  cad_cents: number;
  method: string;
  status: string;
  reference: string;
  refunded_micro: number;
  created_at: string;
  receipt_path?: string;
  tax_cents: number;
  total_cad_cents: number;
  organization_id: string;
}

export interface StatementMonth {
  month: string;
  pdf_path: string;
}
