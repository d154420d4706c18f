// The chart and document endpoints, on the shared API client (bearer token, refresh, problem errors).

import { api, ApiClient } from '../../api/client';
import type { Page } from '../../api/types';
import type * as C from './types';

const e = encodeURIComponent;

export interface Range {
  from?: string;
  to?: string;
  /** tz is the IANA zone whose calendar days the chart counts (the viewer's, by default). */
  tz?: string;
}

/** viewerZone is the browser's IANA time zone, or undefined (the server then counts UTC days). */
export function viewerZone(): string | undefined {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || undefined;
  } catch {
    return undefined;
  }
}

export function charts(c: ApiClient = api) {
  return {
    spend: (org: string, r: Range = {}) => c.get<C.SpendChart>(`/billing/orgs/${e(org)}/charts/spend`, { tz: viewerZone(), ...r }),
    earnings: (org: string, r: Range = {}) => c.get<C.EarningsChart>(`/billing/orgs/${e(org)}/charts/earnings`, { tz: viewerZone(), ...r }),
    programme: (r: Range = {}) => c.get<C.ProgrammeChart>('/billing/programme/charts', { tz: viewerZone(), ...r }),
    utilisation: (r: Range & { pool_id?: string } = {}) => c.get<C.Utilisation>('/testbed/utilisation', { tz: viewerZone(), ...r }),
    purchases: (org: string) => c.get<Page<C.PurchaseRow>>(`/billing/orgs/${e(org)}/purchases`),
    statementMonths: (org: string) => c.get<Page<C.StatementMonth>>(`/billing/orgs/${e(org)}/statements`),
    /** pdf fetches a document path the API gave (/api/v1/billing/...) in the reader's language. */
    pdf: (path: string, lang: string) =>
      c.request<Response>('GET', path.replace(/^\/api\/v1/, ''), { raw: true, headers: { Accept: 'application/pdf', 'Accept-Language': lang } }),
  };
}
