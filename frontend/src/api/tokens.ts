// Where the session's tokens live: the access token only in memory (a page reload drops it), the refresh token in
// localStorage so that a reload can mint a new access token.

export const REFRESH_KEY = 'tamarack.refresh_token';

type Listener = () => void;

export class TokenStore {
  private access: string | null = null;
  private listeners = new Set<Listener>();
  private storage: Storage | null;

  constructor(storage: Storage | null = typeof localStorage === 'undefined' ? null : localStorage) {
    this.storage = storage;
  }

  get accessToken(): string | null {
    return this.access;
  }

  get refreshToken(): string | null {
    try {
      return this.storage?.getItem(REFRESH_KEY) ?? null;
    } catch {
      return null;
    }
  }

  set(access: string, refresh?: string | null): void {
    this.access = access;
    if (refresh) {
      try {
        this.storage?.setItem(REFRESH_KEY, refresh);
      } catch {
        // storage full or disabled: the session lasts until the page closes
      }
    }
    this.emit();
  }

  clear(): void {
    const had = this.access !== null || this.refreshToken !== null;
    this.access = null;
    try {
      this.storage?.removeItem(REFRESH_KEY);
    } catch {
      // ignore
    }
    if (had) this.emit();
  }

  hasSession(): boolean {
    return this.access !== null || this.refreshToken !== null;
  }

  subscribe(fn: Listener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private emit(): void {
    for (const fn of this.listeners) fn();
  }
}
