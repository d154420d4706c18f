import { useCallback, useEffect, useRef, useState } from 'react';
import type { Page } from '../api/types';
import { isApiError } from '../api/problem';

export interface Async<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  reload: () => void;
  setData: (d: T) => void;
}

/** useAsync runs fn when deps change and keeps the latest answer; stale answers are dropped. */
export function useAsync<T>(fn: () => Promise<T>, deps: unknown[]): Async<T> {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<unknown>();
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  const fnRef = useRef(fn);
  fnRef.current = fn;
  useEffect(() => {
    let live = true;
    setLoading(true);
    setError(undefined);
    fnRef.current().then(
      (d) => {
        if (live) {
          setData(d);
          setLoading(false);
        }
      },
      (e: unknown) => {
        if (live) {
          setError(e);
          setLoading(false);
        }
      },
    );
    return () => {
      live = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { data, error, loading, reload, setData };
}

export interface Paged<T, X = unknown> {
  items: T[];
  error: unknown;
  loading: boolean;
  hasMore: boolean;
  loadMore: () => void;
  reload: () => void;
  /** refresh reloads the first page in place (no empty flash): for polling. */
  refresh: () => void;
  /** The page's other members (e.g. catalogue facets) from the latest answer. */
  extra: X | undefined;
}

/** usePaged follows `next_cursor` for "load more"; deps reset the list. */
export function usePaged<P extends Page<unknown>>(
  fetchPage: (cursor?: string) => Promise<P>,
  deps: unknown[],
): Paged<P['items'][number], Omit<P, 'items' | 'next_cursor'>> {
  type T = P['items'][number];
  const [items, setItems] = useState<T[]>([]);
  const [cursor, setCursor] = useState<string | null | undefined>();
  const [extra, setExtra] = useState<Omit<P, 'items' | 'next_cursor'>>();
  const [error, setError] = useState<unknown>();
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  const fnRef = useRef(fetchPage);
  fnRef.current = fetchPage;
  const gen = useRef(0);

  const load = useCallback((after?: string) => {
    const g = ++gen.current;
    setLoading(true);
    setError(undefined);
    fnRef.current(after).then(
      (page) => {
        if (g !== gen.current) return;
        const { items: got, next_cursor, ...rest } = page;
        setItems((prev) => (after ? [...prev, ...(got ?? [])] : (got ?? [])));
        setCursor(next_cursor || null);
        setExtra(rest);
        setLoading(false);
      },
      (e: unknown) => {
        if (g !== gen.current) return;
        setError(e);
        setLoading(false);
      },
    );
  }, []);

  useEffect(() => {
    setItems([]);
    setCursor(undefined);
    load();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, tick]);

  return {
    items,
    error,
    loading,
    hasMore: !!cursor,
    loadMore: () => cursor && load(cursor),
    reload: () => setTick((t) => t + 1),
    refresh: () => load(),
    extra,
  };
}

/** useInterval calls fn every ms while ms is not null. */
export function useInterval(fn: () => void, ms: number | null) {
  const ref = useRef(fn);
  ref.current = fn;
  useEffect(() => {
    if (ms === null) return;
    const id = setInterval(() => ref.current(), ms);
    return () => clearInterval(id);
  }, [ms]);
}

export function useDocumentTitle(title: string) {
  useEffect(() => {
    document.title = title ? `${title} · Tamarack` : 'Tamarack';
  }, [title]);
}

/** useMediaQuery follows a CSS media query (false where matchMedia is missing, e.g. in jsdom). */
export function useMediaQuery(query: string): boolean {
  const get = () => typeof window !== 'undefined' && typeof window.matchMedia === 'function' && window.matchMedia(query).matches;
  const [matches, setMatches] = useState(get);
  useEffect(() => {
    if (typeof window.matchMedia !== 'function') return;
    const m = window.matchMedia(query);
    const on = () => setMatches(m.matches);
    on();
    m.addEventListener('change', on);
    return () => m.removeEventListener('change', on);
  }, [query]);
  return matches;
}

const titleCache = new Map<string, Promise<string>>();

/**
 * useListingTitles resolves listing ids to titles (orders and access requests answer ids), one request per listing,
 * cached for the session; an id that cannot be read stays as it is.
 */
export function useListingTitles(ids: string[], fetchTitle: (id: string) => Promise<string>): Record<string, string> {
  const [titles, setTitles] = useState<Record<string, string>>({});
  const key = [...new Set(ids)].sort().join(',');
  const fetchRef = useRef(fetchTitle);
  fetchRef.current = fetchTitle;
  useEffect(() => {
    let live = true;
    for (const id of key ? key.split(',') : []) {
      if (!titleCache.has(id)) titleCache.set(id, fetchRef.current(id).catch(() => id));
      void titleCache.get(id)!.then((title) => live && setTitles((m) => (m[id] === title ? m : { ...m, [id]: title })));
    }
    return () => {
      live = false;
    };
  }, [key]);
  return titles;
}

/**
 * useSubmit runs a form's action. `run(check, action)` clears the last error, runs the client-side check (field →
 * message; any message stops there), then the action while `busy`; an error is kept for ProblemAlert. `fields`
 * holds the problem's field messages (by JSON path) overlaid with the check's. Resolves true when the action ran.
 */
export function useSubmit() {
  const [error, setError] = useState<unknown>();
  const [local, setLocal] = useState<Record<string, string>>({});
  const [busy, setBusy] = useState(false);
  const run = async (check: () => Record<string, string>, action: () => Promise<void>): Promise<boolean> => {
    setError(undefined);
    const errs = check();
    setLocal(errs);
    if (Object.keys(errs).length) return false;
    setBusy(true);
    try {
      await action();
      return true;
    } catch (e) {
      setError(e);
      return false;
    } finally {
      setBusy(false);
    }
  };
  const fields: Record<string, string> = { ...(isApiError(error) ? error.fieldErrors() : {}), ...local };
  return { error, fields, busy, run };
}
