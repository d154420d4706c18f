// E-mail verification in the chrome: the banner shown on every page while the signed-in user's address is not
// verified, and the "send a new link" action it shares with the 403 `email_unverified` alert and /verify-email.

import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { identity } from '../api/endpoints';
import { isApiError } from '../api/problem';
import { useOptionalSession, useSession } from '../auth/session';
import { ProblemAlert } from './ui';

/** ResendVerification asks for a new verification link; a too-early second request is explained, not an error. */
export function ResendVerification({ className = 'button' }: { className?: string }) {
  const { t } = useTranslation();
  const session = useOptionalSession();
  const [state, setState] = useState<'idle' | 'busy' | 'sent' | 'wait' | 'verified'>('idle');
  const [wait, setWait] = useState(0);
  const [error, setError] = useState<unknown>();
  const resend = async () => {
    setState('busy');
    setError(undefined);
    try {
      await identity().resendVerification();
      setState('sent');
    } catch (e) {
      if (isApiError(e) && e.code === 'too_many_emails') {
        const secs = e.problem.retry_after_seconds;
        setWait(typeof secs === 'number' ? secs : 60);
        setState('wait');
      } else if (isApiError(e) && e.code === 'email_already_verified') {
        setState('verified');
        await session?.refreshVerified().catch(() => undefined);
      } else {
        setError(e);
        setState('idle');
      }
    }
  };
  return (
    <span className="resend">
      <button type="button" className={className} onClick={() => void resend()} disabled={state === 'busy'}>
        {state === 'busy' ? t('common.working') : t('verify.resend')}
      </button>
      <span aria-live="polite" className="resend__status">
        {state === 'sent' && t('verify.resent')}
        {state === 'wait' && t('verify.too_many', { count: wait })}
        {state === 'verified' && t('verify.already')}
      </span>
      <ProblemAlert error={error} />
    </span>
  );
}

/** VerifyBanner reminds a signed-in user with an unverified address to open the link, with a resend action. */
export function VerifyBanner() {
  const { t } = useTranslation();
  const s = useSession();
  if (!s.emailUnverified || !s.me) return null;
  return (
    <section className="verify-banner alert alert--warning" aria-label={t('verify.banner_label')}>
      <p>
        <strong>{t('verify.banner', { email: s.me.user.email })}</strong> {t('verify.banner_why')}
      </p>
      <ResendVerification />
    </section>
  );
}
