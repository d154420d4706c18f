// The one HTTP client of the UI. Every call to the API goes through ApiClient.request: it adds the bearer token,
// refreshes an expired access token once on 401, and turns every failure into an ApiError holding a problem.

import i18n from '../i18n';
import { ApiError, networkProblem, parseProblem } from './problem';
import { TokenStore } from './tokens';
import type { TokenPair } from './types';

export const API_PREFIX = '/api/v1';

export type Query = Record<string, string | number | boolean | undefined | null | readonly string[]>;

export interface RequestOptions {
  body?: unknown;
  query?: Query;
  headers?: Record<string, string>;
  /** Send the bearer token (default true). */
  auth?: boolean;
  /** Return the raw Response instead of parsed JSON (for CSV and other downloads). */
  raw?: boolean;
  signal?: AbortSignal;
}

export function buildQuery(query?: Query): string {
  if (!query) return '';
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v === undefined || v === null || v === '') continue;
    if (Array.isArray(v)) {
      for (const item of v) p.append(k, item);
    } else {
      p.set(k, String(v));
    }
  }
  const s = p.toString();
  return s ? `?${s}` : '';
}

export interface ClientOptions {
  baseUrl?: string;
  fetch?: typeof fetch;
  tokens?: TokenStore;
  /** Called when the session ends because the refresh token was refused. */
  onSessionExpired?: () => void;
  /**
   * The UI's current language, sent as Accept-Language so that the server answers problems (titles, details, field
   * messages) and texts for people in it. Default: i18next's language.
   */
  language?: () => string | undefined;
}

export class ApiClient {
  readonly tokens: TokenStore;
  readonly baseUrl: string;
  private fetchImpl: typeof fetch;
  private refreshing: Promise<boolean> | null = null;
  private language: () => string | undefined;
  onSessionExpired?: () => void;

  constructor(opts: ClientOptions = {}) {
    this.baseUrl = opts.baseUrl ?? '';
    this.fetchImpl = opts.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.tokens = opts.tokens ?? new TokenStore();
    this.onSessionExpired = opts.onSessionExpired;
    this.language = opts.language ?? (() => i18n.language);
  }

  url(path: string, query?: Query): string {
    return `${this.baseUrl}${API_PREFIX}${path}${buildQuery(query)}`;
  }

  async request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const auth = opts.auth ?? true;
    if (auth && !this.tokens.accessToken && this.tokens.refreshToken) {
      // After a reload only the refresh token survives: mint an access token before the first call.
      await this.refresh();
    }
    let res = await this.send(method, path, opts, auth);
    if (res.status === 401 && auth && this.tokens.refreshToken) {
      if (await this.refresh()) {
        res = await this.send(method, path, opts, auth);
      }
    }
    if (!res.ok) {
      throw new ApiError(await parseProblem(res));
    }
    if (opts.raw) return res as unknown as T;
    if (res.status === 204 || res.headers.get('content-length') === '0') return undefined as T;
    const text = await res.text();
    return (text ? JSON.parse(text) : undefined) as T;
  }

  get<T>(path: string, query?: Query, opts: Omit<RequestOptions, 'query'> = {}): Promise<T> {
    return this.request<T>('GET', path, { ...opts, query });
  }
  post<T>(path: string, body?: unknown, opts: RequestOptions = {}): Promise<T> {
    return this.request<T>('POST', path, { ...opts, body });
  }
  patch<T>(path: string, body?: unknown, opts: RequestOptions = {}): Promise<T> {
    return this.request<T>('PATCH', path, { ...opts, body });
  }
  put<T>(path: string, body?: unknown, opts: RequestOptions = {}): Promise<T> {
    return this.request<T>('PUT', path, { ...opts, body });
  }
  del<T>(path: string, opts: RequestOptions = {}): Promise<T> {
    return this.request<T>('DELETE', path, opts);
  }

  /**
   * refresh rotates the refresh token. Concurrent callers share one request: a rotated refresh token must never
   * be sent twice, or the server revokes the whole family.
   */
  refresh(): Promise<boolean> {
    if (!this.refreshing) {
      this.refreshing = this.doRefresh().finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }

  private async doRefresh(): Promise<boolean> {
    const rt = this.tokens.refreshToken;
    if (!rt) return false;
    let res: Response;
    try {
      res = await this.send('POST', '/identity/refresh', { body: { refresh_token: rt } }, false);
    } catch {
      return false; // offline: keep the refresh token for a later try
    }
    if (!res.ok) {
      if (res.status === 400 || res.status === 401 || res.status === 403) {
        this.tokens.clear();
        this.onSessionExpired?.();
      }
      return false;
    }
    const pair = (await res.json()) as TokenPair;
    this.tokens.set(pair.access_token, pair.refresh_token);
    return true;
  }

  private async send(method: string, path: string, opts: RequestOptions, auth: boolean): Promise<Response> {
    const headers: Record<string, string> = { Accept: 'application/json', ...opts.headers };
    const lang = this.language();
    // The server speaks English and French; English is its fallback for anything else.
    if (lang && !('Accept-Language' in headers)) headers['Accept-Language'] = lang === 'fr' ? 'fr, en;q=0.5' : 'en';
    let body: BodyInit | undefined;
    if (opts.body !== undefined) {
      headers['Content-Type'] = 'application/json';
      body = JSON.stringify(opts.body);
    }
    const token = this.tokens.accessToken;
    if (auth && token) headers.Authorization = `Bearer ${token}`;
    try {
      return await this.fetchImpl(this.url(path, opts.query), { method, headers, body, signal: opts.signal });
    } catch (e) {
      if (e instanceof DOMException && e.name === 'AbortError') throw e;
      throw new ApiError(networkProblem(e));
    }
  }
}

/** The application's client. Tests build their own ApiClient with a fake fetch. */
export const api = new ApiClient();
