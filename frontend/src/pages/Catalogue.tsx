import { useEffect, useState, type FormEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { useSearchParams } from 'react-router-dom';
import { marketplace, type CatalogueQuery } from '../api/endpoints';
import type { FacetName } from '../api/types';
import { ListingCard } from '../components/ListingCard';
import { AsyncBlock, LoadMore, PageHeader } from '../components/ui';
import { useDocumentTitle, useMediaQuery, usePaged } from '../lib/hooks';

const FACETS: FacetName[] = ['kind', 'tag', 'license', 'gpu_model', 'residency', 'vendor'];
const SORTS = ['relevance', 'newest', 'price'] as const;

export function Catalogue() {
  const { t } = useTranslation();
  useDocumentTitle(t('catalogue.title'));
  const [params, setParams] = useSearchParams();
  const wide = useMediaQuery('(min-width: 48.01rem)');
  const [q, setQ] = useState(params.get('q') ?? '');
  useEffect(() => setQ(params.get('q') ?? ''), [params]);

  const query: CatalogueQuery = {
    q: params.get('q') ?? undefined,
    // Relevance needs a query: without one the server sorts by newest.
    sort: params.get('sort') === 'relevance' && !params.get('q') ? undefined : ((params.get('sort') as CatalogueQuery['sort']) ?? undefined),
  };
  for (const f of FACETS) query[f] = params.get(f) ?? undefined;
  const key = params.toString();
  const page = usePaged((cursor) => marketplace().catalogue({ ...query, cursor }), [key]);
  const facets = page.extra?.facets ?? {};

  const setParam = (name: string, value: string) => {
    const next = new URLSearchParams(params);
    if (value) next.set(name, value);
    else next.delete(name);
    setParams(next);
  };
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setParam('q', q.trim());
  };

  return (
    <section className="page catalogue">
      <PageHeader title={t('catalogue.title')} />
      <form role="search" className="search-row" onSubmit={submit}>
        <label htmlFor="catalogue-q" className="visually-hidden">
          {t('catalogue.search_label')}
        </label>
        <input
          id="catalogue-q"
          type="search"
          value={q}
          onChange={(e) => setQ(e.target.value)}
          placeholder={t('catalogue.search_placeholder')}
        />
        <button type="submit" className="button button--primary">
          {t('catalogue.search')}
        </button>
      </form>
      <div className="catalogue__layout">
        <aside className="filters" aria-label={t('catalogue.filters')}>
          {/* On a phone the filters fold away above the results; on wider screens they stay open beside them. */}
          <details open={wide || undefined} key={wide ? 'wide' : 'narrow'}>
          <summary className="filters__title">
            <h2 className="filters__heading">{t('catalogue.filters')}</h2>
          </summary>
          {FACETS.map((f) => {
            const counts = facets[f] ?? [];
            const current = params.get(f) ?? '';
            return (
              <div className="field" key={f}>
                <label htmlFor={`facet-${f}`}>{t(`facet.${f}`)}</label>
                <select id={`facet-${f}`} value={current} onChange={(e) => setParam(f, e.target.value)}>
                  <option value="">{t('catalogue.any')}</option>
                  {current && !counts.some((c) => c.value === current) && <option value={current}>{current}</option>}
                  {counts.map((c) => (
                    <option key={c.value} value={c.value}>
                      {(f === 'kind' ? t(`kind.${c.value}`, { defaultValue: c.value }) : (c.label ?? c.value)) + ` (${c.count})`}
                    </option>
                  ))}
                </select>
              </div>
            );
          })}
          <div className="field">
            <label htmlFor="catalogue-sort">{t('catalogue.sort')}</label>
            <select id="catalogue-sort" value={params.get('sort') ?? (params.get('q') ? 'relevance' : 'newest')} onChange={(e) => setParam('sort', e.target.value)}>
              {SORTS.filter((s) => s !== 'relevance' || params.get('q')).map((s) => (
                <option key={s} value={s}>
                  {t(`catalogue.sort_${s}`)}
                </option>
              ))}
            </select>
          </div>
          {key && (
            <button type="button" className="button button--quiet" onClick={() => setParams(new URLSearchParams())}>
              {t('catalogue.clear')}
            </button>
          )}
          </details>
        </aside>
        <div className="catalogue__results" aria-live="polite" aria-busy={page.loading}>
          {page.extra?.total !== undefined && !page.error && (
            <p className="muted" role="status">
              {t('catalogue.results', { count: page.extra.total })}
            </p>
          )}
          <AsyncBlock
            loading={page.loading}
            error={page.error}
            empty={!page.loading && page.items.length === 0 ? true : page.items.length ? false : undefined}
            emptyText={t('catalogue.empty')}
            onRetry={page.reload}
          >
            <ul className="card-grid">
              {page.items.map((l) => (
                <li key={l.id}>
                  <ListingCard listing={l} />
                </li>
              ))}
            </ul>
          </AsyncBlock>
          <LoadMore hasMore={page.hasMore} loading={page.loading} onClick={page.loadMore} />
        </div>
      </div>
    </section>
  );
}
