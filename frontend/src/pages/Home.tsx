import { useState, type FormEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { Link, useNavigate } from 'react-router-dom';
import { useSession } from '../auth/session';
import { useDocumentTitle } from '../lib/hooks';

export function Home() {
  const { t } = useTranslation();
  const s = useSession();
  const navigate = useNavigate();
  const [q, setQ] = useState('');
  useDocumentTitle('');
  const submit = (e: FormEvent) => {
    e.preventDefault();
    navigate(`/catalogue${q ? `?q=${encodeURIComponent(q)}` : ''}`);
  };
  return (
    <section className="page home">
      <div className="hero">
        <h1>{t('home.title')}</h1>
        <p className="lead">{t('home.lead')}</p>
        <form role="search" className="search-row" onSubmit={submit}>
          <label htmlFor="home-q" className="visually-hidden">
            {t('catalogue.search_label')}
          </label>
          <input
            id="home-q"
            type="search"
            value={q}
            onChange={(e) => setQ(e.target.value)}
            placeholder={t('catalogue.search_placeholder')}
          />
          <button type="submit" className="button button--primary">
            {t('catalogue.search')}
          </button>
        </form>
      </div>
      <ul className="tiles">
        {(['model', 'dataset', 'compute'] as const).map((k) => (
          <li key={k} className="card tile">
            <h2>
              <Link to={`/catalogue?kind=${k}`}>{t(`home.tile_${k}_title`)}</Link>
            </h2>
            <p>{t(`home.tile_${k}_body`)}</p>
          </li>
        ))}
      </ul>
      {s.status === 'anonymous' && (
        <p className="cta">
          <Link to="/signup" className="button button--primary">
            {t('home.cta_signup')}
          </Link>{' '}
          <Link to="/signin">{t('home.cta_signin')}</Link>
        </p>
      )}
    </section>
  );
}
