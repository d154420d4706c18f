import { lazy, Suspense, type ReactNode } from 'react';
import { useTranslation } from 'react-i18next';
import { BrowserRouter, Route, Routes } from 'react-router-dom';
import { SessionProvider } from './auth/session';
import { RequireAuth } from './components/Guard';
import { Layout } from './components/Layout';
import { Loading } from './components/ui';
import { AcceptInvitation, OIDCCallback, SignIn, SignUp } from './pages/Auth';
import { Catalogue } from './pages/Catalogue';
import { ForgotPassword, ResetPassword, VerifyEmail } from './pages/EmailLinks';
import { Home } from './pages/Home';
import { ListingPage } from './pages/ListingPage';
import { Profile, Tokens } from './pages/Profile';
import type { OrgKind } from './api/types';

// The heavier, role-specific parts load on demand: the terminal (xterm) and the charts (recharts) stay out of
// the catalogue's first load.
const Vendor = lazy(() => import('./pages/Vendor'));
const Editor = lazy(() => import('./pages/Editor'));
const Staff = lazy(() => import('./pages/Staff'));
const StaffBilling = lazy(() => import('./pages/StaffBilling'));
const Sandboxes = lazy(() => import('./pages/Sandboxes'));
const SandboxPage = lazy(() => import('./pages/SandboxPage'));
const Wallet = lazy(() => import('./pages/Wallet'));
const Access = lazy(() => import('./pages/Access'));
const Security = lazy(() => import('./pages/Security'));
const Device = lazy(() => import('./pages/Device'));

function NotFound() {
  const { t } = useTranslation();
  return (
    <section className="page">
      <h1>{t('error.not_found_title')}</h1>
      <p>{t('error.not_found_body')}</p>
    </section>
  );
}

function Guarded({ children, staff, kinds }: { children: ReactNode; staff?: boolean; kinds?: OrgKind[] }) {
  return (
    <RequireAuth staff={staff} kinds={kinds}>
      <Suspense fallback={<Loading />}>{children}</Suspense>
    </RequireAuth>
  );
}

const BUYERS: OrgKind[] = ['sme', 'partner'];

export function AppRoutes() {
  return (
    <Routes>
      <Route element={<Layout />}>
        <Route index element={<Home />} />
        <Route path="catalogue" element={<Catalogue />} />
        <Route path="listings/:id" element={<ListingPage />} />
        <Route path="signup" element={<SignUp />} />
        <Route path="signin" element={<SignIn />} />
        <Route path="signin/callback" element={<OIDCCallback />} />
        <Route path="invitations/:token" element={<AcceptInvitation />} />
        <Route path="verify-email" element={<VerifyEmail />} />
        <Route path="forgot-password" element={<ForgotPassword />} />
        <Route path="reset-password" element={<ResetPassword />} />
        <Route path="profile" element={<RequireAuth><Profile /></RequireAuth>} />
        <Route path="tokens" element={<RequireAuth><Tokens /></RequireAuth>} />
        <Route path="account/security" element={<Guarded><Security /></Guarded>} />
        {/* Device login (the CLI's `tamarack login`): signed-out visitors sign in and come back with ?code=. */}
        <Route path="device" element={<Guarded><Device /></Guarded>} />

        <Route path="vendor/listings" element={<Guarded kinds={['vendor']}><Vendor page="listings" /></Guarded>} />
        <Route path="vendor/listings/new" element={<Guarded kinds={['vendor']}><Editor /></Guarded>} />
        <Route path="vendor/listings/:id/edit" element={<Guarded kinds={['vendor']}><Editor /></Guarded>} />
        <Route path="vendor/access-requests" element={<Guarded kinds={['vendor']}><Vendor page="access" /></Guarded>} />
        <Route path="vendor/pools" element={<Guarded kinds={['vendor']}><Vendor page="pools" /></Guarded>} />
        <Route path="vendor/earnings" element={<Guarded kinds={['vendor']}><Vendor page="earnings" /></Guarded>} />

        <Route path="staff/reviews" element={<Guarded staff><Staff page="reviews" /></Guarded>} />
        <Route path="staff/organizations" element={<Guarded staff><Staff page="organizations" /></Guarded>} />
        <Route path="staff/grants" element={<Guarded staff><Staff page="grants" /></Guarded>} />
        <Route path="staff/spend" element={<Guarded staff><Staff page="spend" /></Guarded>} />
        <Route path="staff/payments" element={<Guarded staff><StaffBilling page="payments" /></Guarded>} />
        <Route path="staff/payouts" element={<Guarded staff><StaffBilling page="payouts" /></Guarded>} />
        <Route path="staff/audit" element={<Guarded staff><Staff page="audit" /></Guarded>} />

        <Route path="sandboxes" element={<Guarded kinds={BUYERS}><Sandboxes page="list" /></Guarded>} />
        <Route path="sandboxes/new" element={<Guarded kinds={BUYERS}><Sandboxes page="launch" /></Guarded>} />
        <Route path="sandboxes/:id" element={<Guarded kinds={BUYERS}><SandboxPage /></Guarded>} />
        <Route path="wallet" element={<Guarded><Wallet page="wallet" /></Guarded>} />
        <Route path="wallet/return" element={<Guarded><Wallet page="return" /></Guarded>} />
        {/* Stripe Checkout's success and cancel URLs (billing's /billing?purchase=…&status=…). */}
        <Route path="billing" element={<Guarded><Wallet page="return" /></Guarded>} />
        <Route path="entitlements" element={<Guarded><Access page="entitlements" /></Guarded>} />
        <Route path="orders" element={<Guarded><Access page="orders" /></Guarded>} />
        <Route path="requests" element={<Guarded kinds={BUYERS}><Access page="requests" /></Guarded>} />
        <Route path="*" element={<NotFound />} />
      </Route>
    </Routes>
  );
}

export function App() {
  return (
    <SessionProvider>
      <BrowserRouter>
        <AppRoutes />
      </BrowserRouter>
    </SessionProvider>
  );
}
