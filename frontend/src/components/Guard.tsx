import type { ReactNode } from 'react';
import { useTranslation } from 'react-i18next';
import { Navigate, useLocation } from 'react-router-dom';
import type { OrgKind } from '../api/types';
import { useSession } from '../auth/session';
import { Loading } from './ui';

/** RequireAuth sends anonymous visitors to sign in and back; with staff or kinds set it also checks the role. */
export function RequireAuth({ children, staff, kinds }: { children: ReactNode; staff?: boolean; kinds?: OrgKind[] }) {
  const s = useSession();
  const { t } = useTranslation();
  const loc = useLocation();
  if (s.status === 'loading') return <Loading />;
  if (s.status === 'anonymous') {
    return <Navigate to={`/signin?next=${encodeURIComponent(loc.pathname + loc.search)}`} replace />;
  }
  const allowed = (!staff || s.isStaff) && (!kinds || (s.kind !== null && kinds.includes(s.kind)) || s.isStaff);
  if (!allowed) {
    return (
      <section className="page">
        <h1>{t('error.forbidden_title')}</h1>
        <p>{t('error.forbidden_body')}</p>
      </section>
    );
  }
  return <>{children}</>;
}
