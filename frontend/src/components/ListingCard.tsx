import { useTranslation } from 'react-i18next';
import { Link } from 'react-router-dom';
import type { CatalogItem } from '../api/types';
import { useLocalText } from '../lib/localized';
import { formatCredits } from '../api/money';
import i18n from '../i18n';

export function ListingCard({ listing }: { listing: CatalogItem }) {
  const { t } = useTranslation();
  const { title, summary, titleLang, summaryLang } = useLocalText(listing);
  return (
    <article className="card listing-card">
      <p className="listing-card__kind">
        <span className={`kind kind--${listing.kind}`}>{t(`kind.${listing.kind}`)}</span>
        {listing.gated && <span className="badge badge--pending"> {t('listing.gated')}</span>}
      </p>
      <h3 className="listing-card__title">
        <Link to={`/listings/${encodeURIComponent(listing.id)}`} {...titleLang}>
          {title.text}
        </Link>
      </h3>
      <p className="listing-card__summary" {...summaryLang}>
        {summary.text}
      </p>
      <dl className="meta">
        <div>
          <dt>{t('listing.vendor')}</dt>
          <dd>{listing.vendor?.name}</dd>
        </div>
        <div>
          <dt>{t('listing.license')}</dt>
          <dd>{listing.license || '—'}</dd>
        </div>
        <div>
          <dt>{t('listing.residency')}</dt>
          <dd>{listing.residency || '—'}</dd>
        </div>
        {listing.gpu_model && (
          <div>
            <dt>{t('listing.gpu_model')}</dt>
            <dd>{listing.gpu_model}</dd>
          </div>
        )}
        <div>
          <dt>{listing.kind === 'compute' ? t('listing.price_per_gpu_hour') : t('listing.price')}</dt>
          <dd className="money">
            {listing.price_from_micro > 0 ? t('listing.from_price', { price: formatCredits(listing.price_from_micro, i18n.language, { rate: true }) }) : t('listing.free')}
          </dd>
        </div>
      </dl>
    </article>
  );
}
