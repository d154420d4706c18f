import { useEffect, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { Link, NavLink, Outlet, useLocation, useNavigate } from 'react-router-dom';
import { useSession, type Session } from '../auth/session';
import { VerifyBanner } from './EmailVerification';
import { ErrorBoundary } from './ErrorBoundary';
import { LanguageSwitch } from './LanguageSwitch';

interface NavItem {
  to: string;
  label: string;
}

export function navItems(s: Pick<Session, 'status' | 'isStaff' | 'kind' | 'isOrgAdmin'>): NavItem[] {
  const items: NavItem[] = [{ to: '/catalogue', label: 'nav.catalogue' }];
  if (s.status !== 'authenticated') return items;
  if (s.kind === 'vendor') {
    items.push({ to: '/vendor/listings', label: 'nav.my_listings' });
    items.push({ to: '/vendor/access-requests', label: 'nav.access_requests' });
    items.push({ to: '/vendor/pools', label: 'nav.pools' });
    if (s.isOrgAdmin) items.push({ to: '/vendor/earnings', label: 'nav.earnings' });
  }
  if (s.kind === 'sme' || s.kind === 'partner') {
    items.push({ to: '/sandboxes', label: 'nav.sandboxes' });
    items.push({ to: '/entitlements', label: 'nav.entitlements' });
    items.push({ to: '/orders', label: 'nav.orders' });
    items.push({ to: '/requests', label: 'nav.my_requests' });
  }
  items.push({ to: '/wallet', label: 'nav.wallet' });
  if (s.isStaff) {
    items.push({ to: '/staff/reviews', label: 'nav.reviews' });
    items.push({ to: '/staff/organizations', label: 'nav.organizations' });
    items.push({ to: '/staff/grants', label: 'nav.grants' });
    items.push({ to: '/staff/spend', label: 'nav.spend' });
    items.push({ to: '/staff/payments', label: 'nav.payments' });
    items.push({ to: '/staff/payouts', label: 'nav.payouts' });
    items.push({ to: '/staff/audit', label: 'nav.audit' });
  }
  return items;
}

export function Layout() {
  const { t } = useTranslation();
  const session = useSession();
  const navigate = useNavigate();
  const location = useLocation();
  const [open, setOpen] = useState(false);
  useEffect(() => setOpen(false), [location.pathname]);

  const items = navItems(session);
  return (
    <>
      <a className="skip-link" href="#main">
        {t('header.skip')}
      </a>
      <header className="site-header">
        <div className="site-header__bar">
          <Link to="/" className="brand">
            <img src="/favicon.svg" alt="" width="28" height="28" />
            <span>Tamarack</span>
          </Link>
          <button
            type="button"
            className="button button--quiet menu-toggle"
            aria-expanded={open}
            aria-controls="site-nav"
            onClick={() => setOpen((o) => !o)}
          >
            {t('header.menu')}
          </button>
          <nav id="site-nav" className={`site-nav${open ? ' site-nav--open' : ''}`} aria-label={t('header.nav_label')}>
            <ul>
              {items.map((i) => (
                <li key={i.to}>
                  <NavLink to={i.to}>{t(i.label)}</NavLink>
                </li>
              ))}
            </ul>
            <div className="site-nav__account">
              <LanguageSwitch />
              {session.status === 'authenticated' ? (
                <>
                  <NavLink to="/profile" className="account-link">
                    {session.me?.user.name}
                    {session.activeOrg && <span className="account-link__org"> · {session.activeOrg.name}</span>}
                  </NavLink>
                  <button
                    type="button"
                    className="button button--quiet"
                    onClick={() => void session.signOut().then(() => navigate('/'))}
                  >
                    {t('header.sign_out')}
                  </button>
                </>
              ) : session.status === 'anonymous' ? (
                <>
                  <NavLink to="/signin">{t('header.sign_in')}</NavLink>
                  <Link to="/signup" className="button button--primary">
                    {t('header.sign_up')}
                  </Link>
                </>
              ) : null}
            </div>
          </nav>
        </div>
      </header>
      <main id="main" tabIndex={-1}>
        {location.pathname !== '/verify-email' && <VerifyBanner />}
        <ErrorBoundary resetKey={location.pathname}>
          <Outlet />
        </ErrorBoundary>
      </main>
      <footer className="site-footer">
        <p>{t('footer.text')}</p>
      </footer>
    </>
  );
}
