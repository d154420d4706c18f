// The pages e-mailed links open: /verify-email?token=… and /reset-password?token=…, and /forgot-password that
// asks for the latter. Tokens go to the API in request bodies only.

import { useEffect, useRef, useState, type FormEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { Link, useNavigate, useSearchParams } from 'react-router-dom';
import { identity } from '../api/endpoints';
import { isApiError } from '../api/problem';
import type { VerifiedEmail } from '../api/types';
import { useSession } from '../auth/session';
import { ResendVerification } from '../components/EmailVerification';
import { Loading, Notice, ProblemAlert, TextField } from '../components/ui';
import { useDocumentTitle } from '../lib/hooks';

export function VerifyEmail() {
  const { t } = useTranslation();
  useDocumentTitle(t('verify.title'));
  const [params] = useSearchParams();
  const token = params.get('token') ?? '';
  const s = useSession();
  const [done, setDone] = useState<VerifiedEmail | null>(null);
  const [error, setError] = useState<unknown>();
  // A link works once: post each token once, even when an effect runs twice (React's strict mode).
  const posted = useRef('');
  const { refreshVerified } = s;
  useEffect(() => {
    if (!token || posted.current === token) return;
    posted.current = token;
    identity()
      .verifyEmail(token)
      .then(async (v) => {
        setDone(v);
        // The access token's email_verified claim is read by the other services: get a fresh one.
        await refreshVerified().catch(() => undefined);
      }, setError);
  }, [token, refreshVerified]);
  const invalid = !token || (isApiError(error) && (error.code === 'verification_token_invalid' || error.status === 400));
  return (
    <section className="page narrow">
      <h1>{t('verify.title')}</h1>
      {done && (
        <Notice tone="success">
          <p>{t('verify.done', { email: done.email })}</p>
          <p>
            <Link to="/catalogue">{t('verify.continue')}</Link>
          </p>
        </Notice>
      )}
      {!done && !invalid && !error && <Loading label={t('verify.checking')} />}
      {!done && invalid && (
        <div className="alert alert--error" role="alert">
          <p className="alert__title">{t('verify.invalid_title')}</p>
          <p className="alert__detail">{t('verify.invalid_body')}</p>
          {s.status === 'authenticated' ? (
            s.emailUnverified ? (
              <ResendVerification />
            ) : null
          ) : (
            <p>
              <Link to="/signin?next=%2Fprofile">{t('verify.sign_in_to_resend')}</Link>
            </p>
          )}
        </div>
      )}
      {!done && !invalid && <ProblemAlert error={error} />}
    </section>
  );
}

export function ForgotPassword() {
  const { t } = useTranslation();
  useDocumentTitle(t('forgot.title'));
  const [email, setEmail] = useState('');
  const [sent, setSent] = useState('');
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const fields = isApiError(error) ? error.fieldErrors() : {};
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    setSent('');
    try {
      await identity().forgotPassword(email);
      setSent(email);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <section className="page narrow">
      <h1>{t('forgot.title')}</h1>
      <p className="lead">{t('forgot.lead')}</p>
      {sent && <Notice tone="success">{t('forgot.sent', { email: sent })}</Notice>}
      <form onSubmit={(e) => void submit(e)} noValidate>
        <ProblemAlert error={error} listFields={(f) => f !== 'email'} />
        <TextField label={t('signup.email')} name="email" type="email" value={email} onChange={(e) => setEmail(e.target.value)} error={fields.email} required autoComplete="email" />
        <button type="submit" className="button button--primary" disabled={busy}>
          {busy ? t('common.working') : t('forgot.submit')}
        </button>
      </form>
      <p>
        <Link to="/signin">{t('forgot.back')}</Link>
      </p>
    </section>
  );
}

export function ResetPassword() {
  const { t } = useTranslation();
  useDocumentTitle(t('reset.title'));
  const [params] = useSearchParams();
  const token = params.get('token') ?? '';
  const s = useSession();
  const navigate = useNavigate();
  const [password, setPassword] = useState('');
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const fields = isApiError(error) ? error.fieldErrors() : {};
  const badLink = !token || (isApiError(error) && (error.code === 'reset_token_invalid' || 'token' in fields));
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await identity().resetPassword(token, password);
      // Every session of the account ended with the reset, this one too.
      if (s.status === 'authenticated') await s.signOut();
      navigate('/signin?reset=done');
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <section className="page narrow">
      <h1>{t('reset.title')}</h1>
      {badLink ? (
        <div className="alert alert--error" role="alert">
          <p className="alert__title">{t('reset.invalid_title')}</p>
          <p className="alert__detail">{t('reset.invalid_body')}</p>
          <p>
            <Link to="/forgot-password">{t('reset.ask_again')}</Link>
          </p>
        </div>
      ) : (
        <form onSubmit={(e) => void submit(e)} noValidate>
          <ProblemAlert error={error} listFields={(f) => f !== 'password'} />
          <TextField
            label={t('reset.password')}
            name="password"
            type="password"
            value={password}
            onChange={(e) => setPassword(e.target.value)}
            error={fields.password}
            hint={t('signup.password_hint')}
            required
            autoComplete="new-password"
          />
          <button type="submit" className="button button--primary" disabled={busy}>
            {busy ? t('common.working') : t('reset.submit')}
          </button>
        </form>
      )}
    </section>
  );
}
