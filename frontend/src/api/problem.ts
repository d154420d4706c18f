// RFC 9457 problem details as every Tamarack endpoint answers them, and the one error type the client throws.

export interface FieldProblem {
  /** JSON path of the input field, e.g. `organization.name`. */
  field: string;
  code: string;
  message: string;
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail?: string;
  code: string;
  fields?: FieldProblem[];
  /** Extension members a client can act on (e.g. `next_free_at` on 409 `no_capacity`, `shortfall_micro` on 402 `insufficient_credits`). */
  [extension: string]: unknown;
}

/** ApiError carries the server's problem (or one synthesised for network failures and non-problem answers). */
export class ApiError extends Error {
  readonly problem: Problem;
  constructor(problem: Problem) {
    super(problem.detail ? `${problem.title}: ${problem.detail}` : problem.title);
    this.name = 'ApiError';
    this.problem = problem;
  }
  get status(): number {
    return this.problem.status;
  }
  get code(): string {
    return this.problem.code;
  }
  /** Field errors keyed by JSON path; the first message wins for each field. */
  fieldErrors(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const f of this.problem.fields ?? []) {
      if (!(f.field in out)) out[f.field] = f.message;
    }
    return out;
  }
}

export function isApiError(e: unknown): e is ApiError {
  return e instanceof ApiError;
}

function isProblemShape(v: unknown): v is Problem {
  return typeof v === 'object' && v !== null && typeof (v as Problem).title === 'string';
}

/** parseProblem reads an error response. It never throws: a body that is not a problem becomes a generic one. */
export async function parseProblem(res: Response): Promise<Problem> {
  const ct = res.headers.get('content-type') ?? '';
  if (ct.includes('json')) {
    try {
      const body: unknown = await res.json();
      if (isProblemShape(body)) {
        return {
          ...body,
          type: body.type ?? 'about:blank',
          status: typeof body.status === 'number' ? body.status : res.status,
          code: typeof body.code === 'string' && body.code ? body.code : `http_${res.status}`,
          fields: Array.isArray(body.fields) ? body.fields : [],
        };
      }
    } catch {
      // fall through to the generic problem
    }
  }
  return {
    type: 'about:blank',
    title: res.statusText || `HTTP ${res.status}`,
    status: res.status,
    code: `http_${res.status}`,
    fields: [],
  };
}

export function networkProblem(err: unknown): Problem {
  return {
    type: 'about:blank',
    title: 'network_error',
    status: 0,
    code: 'network_error',
    detail: err instanceof Error ? err.message : String(err),
    fields: [],
  };
}
