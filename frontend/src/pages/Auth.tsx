import { useEffect, useRef, useState, type FormEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { Link, useNavigate, useParams, useSearchParams } from 'react-router-dom';
import { api } from '../api/client';
import { identity } from '../api/endpoints';
import { isApiError } from '../api/problem';
import type { AcceptedInvitation, MFAChallenge, OrgKind } from '../api/types';
import { useSession } from '../auth/session';
import { Loading, Notice, ProblemAlert, SelectField, TextField } from '../components/ui';
import { useAsync, useDocumentTitle } from '../lib/hooks';

/** safeNext keeps post-sign-in redirects on this site. */
function safeNext(next: string | null): string {
  return next && next.startsWith('/') && !next.startsWith('//') ? next : '/';
}

export function SignUp() {
  const { t } = useTranslation();
  useDocumentTitle(t('signup.title'));
  const { signUp } = useSession();
  const navigate = useNavigate();
  const [params] = useSearchParams();
  const [form, setForm] = useState({ name: '', email: '', password: '', orgName: '', kind: (params.get('kind') as OrgKind) || 'sme' });
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const fields = isApiError(error) ? error.fieldErrors() : {};
  const set = (k: keyof typeof form) => (e: { target: { value: string } }) => setForm({ ...form, [k]: e.target.value });

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await signUp({
        email: form.email,
        password: form.password,
        name: form.name,
        organization: { name: form.orgName, kind: form.kind },
      });
      navigate(safeNext(params.get('next')));
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <section className="page narrow">
      <h1>{t('signup.title')}</h1>
      <p className="lead">{t('signup.lead')}</p>
      <form onSubmit={(e) => void submit(e)} noValidate>
        <ProblemAlert error={error} />
        <fieldset className="kind-choice">
          <legend>{t('signup.kind_legend')}</legend>
          {(['sme', 'vendor', 'partner'] as const).map((k) => (
            <label key={k} className="radio-card">
              <input type="radio" name="kind" value={k} checked={form.kind === k} onChange={set('kind')} />
              <span>
                <strong>{t(`org_kind.${k}`)}</strong>
                <span className="muted">{t(`signup.kind_${k}_hint`)}</span>
              </span>
            </label>
          ))}
          {fields['organization.kind'] && <p className="field__error">{fields['organization.kind']}</p>}
        </fieldset>
        <TextField label={t('signup.org_name')} name="organization.name" value={form.orgName} onChange={set('orgName')} error={fields['organization.name']} required autoComplete="organization" />
        <TextField label={t('signup.name')} name="name" value={form.name} onChange={set('name')} error={fields.name} required autoComplete="name" />
        <TextField label={t('signup.email')} name="email" type="email" value={form.email} onChange={set('email')} error={fields.email} required autoComplete="email" />
        <TextField
          label={t('signup.password')}
          name="password"
          type="password"
          value={form.password}
          onChange={set('password')}
          error={fields.password}
          hint={t('signup.password_hint')}
          required
          autoComplete="new-password"
        />
        <button type="submit" className="button button--primary" disabled={busy}>
          {busy ? t('common.working') : t('signup.submit')}
        </button>
      </form>
      <p>
        {t('signup.have_account')} <Link to="/signin">{t('header.sign_in')}</Link>
      </p>
    </section>
  );
}

export function SignIn() {
  const { t } = useTranslation();
  useDocumentTitle(t('signin.title'));
  const { signIn } = useSession();
  const navigate = useNavigate();
  const [params] = useSearchParams();
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const [challenge, setChallenge] = useState<MFAChallenge | null>(null);
  const passwordRef = useRef<HTMLInputElement>(null);
  const fields = isApiError(error) ? error.fieldErrors() : {};
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      const c = await signIn(email, password);
      if (c) {
        setPassword('');
        setChallenge(c);
      } else {
        navigate(safeNext(params.get('next')));
      }
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  if (challenge) {
    return (
      <SecondStep
        challenge={challenge}
        onDone={() => navigate(safeNext(params.get('next')))}
        onRestart={(err) => {
          setChallenge(null);
          setError(err);
          // The password step again: the challenge expired or was used up.
          requestAnimationFrame(() => passwordRef.current?.focus());
        }}
      />
    );
  }
  return (
    <section className="page narrow">
      <h1>{t('signin.title')}</h1>
      {params.get('reset') === 'done' && <Notice tone="success">{t('reset.done')}</Notice>}
      <form onSubmit={(e) => void submit(e)} noValidate>
        {isApiError(error) && error.code === 'mfa_token_invalid' ? (
          <div className="alert alert--error" role="alert">
            <p className="alert__title">{t('mfa.error_expired')}</p>
          </div>
        ) : (
          <ProblemAlert error={error} />
        )}
        <TextField label={t('signup.email')} name="email" type="email" value={email} onChange={(e) => setEmail(e.target.value)} error={fields.email} required autoComplete="email" />
        <TextField
          ref={passwordRef}
          label={t('signup.password')}
          name="password"
          type="password"
          value={password}
          onChange={(e) => setPassword(e.target.value)}
          error={fields.password}
          required
          autoComplete="current-password"
        />
        <button type="submit" className="button button--primary" disabled={busy}>
          {busy ? t('common.working') : t('signin.submit')}
        </button>
      </form>
      <p>
        <Link to="/forgot-password">{t('signin.forgot')}</Link>
      </p>
      <p>
        {t('signin.no_account')} <Link to="/signup">{t('header.sign_up')}</Link>
      </p>
      <OIDCProviders next={safeNext(params.get('next'))} />
    </section>
  );
}

/** Where to land after an OpenID Connect sign-in, kept across the trip to the provider. */
const OIDC_NEXT_KEY = 'tamarack.oidc_next';

/** The configured OpenID Connect providers as "Sign in with …" links; nothing when there are none. */
function OIDCProviders({ next }: { next: string }) {
  const { t } = useTranslation();
  const providers = useAsync(() => identity().oidcProviders(), []);
  const list = providers.data?.providers ?? [];
  if (list.length === 0) return null; // none configured, or the list failed: password sign-in still works
  const remember = () => {
    try {
      sessionStorage.setItem(OIDC_NEXT_KEY, next);
    } catch {
      // storage disabled: the user lands on the home page
    }
  };
  return (
    <nav className="oidc-providers" aria-label={t('oidc.providers_label')}>
      <p>{t('oidc.or')}</p>
      <ul>
        {list.map((p) => (
          <li key={p.id}>
            <a className="button" href={p.login_url} onClick={remember}>
              {t('oidc.sign_in_with', { name: p.name })}
            </a>
          </li>
        ))}
      </ul>
    </nav>
  );
}

/** Problem codes the provider's callback may send back in ?error=, each with its own message. */
const OIDC_ERRORS = [
  'oidc_provider_not_found', 'oidc_provider_unavailable', 'oidc_state_invalid', 'oidc_denied', 'oidc_token_invalid',
  'oidc_email_unverified', 'oidc_domain_not_allowed', 'oidc_misconfigured', 'oidc_code_invalid', 'email_taken',
  'validation_failed',
];

/**
 * The provider's callback lands here with ?code= (traded for tokens, then on to the page the user came from)
 * or ?error=<problem code> (explained in the user's language).
 */
export function OIDCCallback() {
  const { t } = useTranslation();
  useDocumentTitle(t('oidc.callback_title'));
  const { signInWithCode } = useSession();
  const navigate = useNavigate();
  const [params] = useSearchParams();
  const [failure, setFailure] = useState<string | null>(params.get('error') ?? (params.get('code') ? null : 'validation_failed'));
  const [error, setError] = useState<unknown>();
  const started = useRef(false);
  useEffect(() => {
    const code = params.get('code');
    if (!code || started.current) return;
    started.current = true; // the code works once: not again in StrictMode's second effect run
    // Drop the code from the address bar and history before using it.
    window.history.replaceState(window.history.state, '', window.location.pathname);
    let next = '/';
    try {
      next = safeNext(sessionStorage.getItem(OIDC_NEXT_KEY));
      sessionStorage.removeItem(OIDC_NEXT_KEY);
    } catch {
      // storage disabled
    }
    signInWithCode(code)
      .then(() => navigate(next, { replace: true }))
      .catch((e: unknown) => {
        if (isApiError(e) && OIDC_ERRORS.includes(e.code)) setFailure(e.code);
        else setError(e);
      });
  }, [params, signInWithCode, navigate]);

  const known = failure && OIDC_ERRORS.includes(failure) ? failure : failure ? 'other' : null;
  return (
    <section className="page narrow">
      <h1>{t('oidc.callback_title')}</h1>
      {known || error ? (
        <>
          {known ? (
            <div className="alert alert--error" role="alert">
              <p className="alert__title">{t('oidc.failed')}</p>
              <p className="alert__detail">{t(`oidc_error.${known}`)}</p>
            </div>
          ) : (
            <ProblemAlert error={error} />
          )}
          <p>
            <Link to="/signin">{t('oidc.back')}</Link>
          </p>
        </>
      ) : (
        <Loading label={t('oidc.working')} />
      )}
    </section>
  );
}

/** normalizeCode drops the spaces people type or paste inside a 6-digit code. */
export function normalizeCode(s: string): string {
  return s.replace(/[\s-]/g, '');
}

/**
 * SecondStep is two-step sign-in's second form: the authenticator app's 6-digit code, or (through "Use a recovery
 * code") one of the recovery codes. A wrong code empties the field and keeps the focus there; an expired or
 * used-up challenge sends the person back to the password step (onRestart).
 */
export function SecondStep({ challenge, onDone, onRestart }: { challenge: MFAChallenge; onDone: () => void; onRestart: (err: unknown) => void }) {
  const { t } = useTranslation();
  const { completeSignIn } = useSession();
  const [recovery, setRecovery] = useState(false);
  const [code, setCode] = useState('');
  const [error, setError] = useState<unknown>();
  const [invalid, setInvalid] = useState('');
  const [busy, setBusy] = useState(false);
  const codeRef = useRef<HTMLInputElement>(null);
  useEffect(() => codeRef.current?.focus(), [recovery, error]);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError(undefined);
    const value = recovery ? code.trim() : normalizeCode(code);
    // The same checks as the server, in the person's language, before spending one of the challenge's tries.
    if (!recovery && !/^\d{6}$/.test(value)) {
      setInvalid(t('mfa.code_format'));
      codeRef.current?.focus();
      return;
    }
    if (recovery && value.replace(/[\s-]/g, '').length !== 16) {
      setInvalid(t('mfa.recovery_format'));
      codeRef.current?.focus();
      return;
    }
    setInvalid('');
    setBusy(true);
    try {
      await completeSignIn(challenge.mfa_token, recovery ? { recovery_code: value } : { code: value });
      onDone();
    } catch (err) {
      if (isApiError(err) && err.code === 'mfa_token_invalid') {
        onRestart(err);
        return;
      }
      setCode('');
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const fields = isApiError(error) ? error.fieldErrors() : {};
  const fieldError = invalid || (recovery ? fields.recovery_code : fields.code) || undefined;
  return (
    <section className="page narrow">
      <h1>{t('signin.title')}</h1>
      <h2>{t('mfa.step_title')}</h2>
      <p className="lead">{recovery ? t('mfa.step_lead_recovery') : t('mfa.step_lead')}</p>
      <form onSubmit={(e) => void submit(e)} noValidate>
        {isApiError(error) && error.code === 'invalid_mfa_code' ? (
          <div className="alert alert--error" role="alert">
            <p className="alert__title">{recovery ? t('mfa.error_wrong_recovery') : t('mfa.error_wrong_code')}</p>
          </div>
        ) : (
          <ProblemAlert error={error} />
        )}
        {recovery ? (
          <TextField
            key="recovery"
            ref={codeRef}
            label={t('mfa.recovery_code')}
            name="recovery_code"
            value={code}
            onChange={(e) => setCode(e.target.value)}
            error={fieldError}
            hint={t('mfa.recovery_hint')}
            required
            autoComplete="off"
            autoCapitalize="characters"
            spellCheck={false}
          />
        ) : (
          <TextField
            key="code"
            ref={codeRef}
            label={t('mfa.code')}
            name="code"
            value={code}
            onChange={(e) => setCode(e.target.value)}
            error={fieldError}
            hint={t('mfa.code_hint')}
            required
            inputMode="numeric"
            autoComplete="one-time-code"
            maxLength={7}
          />
        )}
        <button type="submit" className="button button--primary" disabled={busy}>
          {busy ? t('common.working') : t('mfa.verify')}
        </button>
      </form>
      <p>
        <button
          type="button"
          className="button button--link"
          onClick={() => {
            setRecovery((r) => !r);
            setCode('');
            setInvalid('');
            setError(undefined);
          }}
        >
          {recovery ? t('mfa.use_app') : t('mfa.use_recovery')}
        </button>
      </p>
    </section>
  );
}

export function AcceptInvitation() {
  const { t } = useTranslation();
  useDocumentTitle(t('invitation.title'));
  const { token = '' } = useParams();
  const s = useSession();
  const [done, setDone] = useState<AcceptedInvitation | null>(null);
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);
  const next = `/invitations/${encodeURIComponent(token)}`;
  const [name, setName] = useState('');
  const [password, setPassword] = useState('');
  const fields = isApiError(error) ? error.fieldErrors() : {};
  const accept = async () => {
    setBusy(true);
    setError(undefined);
    try {
      const anonymous = s.status !== 'authenticated';
      const res = await identity().acceptInvitation(token, anonymous ? { name, password } : {});
      // Accepting without an account creates one and answers its session.
      if (res.session) api.tokens.set(res.session.access_token, res.session.refresh_token);
      setDone(res);
      await s.reloadMe();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <section className="page narrow">
      <h1>{t('invitation.title')}</h1>
      {s.status === 'loading' && <Loading />}
      {s.status === 'anonymous' && !done && (
        <>
          <p>{t('invitation.sign_in_first')}</p>
          <p>
            <Link className="button" to={`/signin?next=${encodeURIComponent(next)}`}>
              {t('header.sign_in')}
            </Link>
          </p>
          <form
            onSubmit={(e) => {
              e.preventDefault();
              void accept();
            }}
            noValidate
          >
            <h2>{t('invitation.new_account')}</h2>
            <ProblemAlert error={error} listFields={(f) => f !== 'name' && f !== 'password'} />
            <TextField label={t('signup.name')} value={name} onChange={(e) => setName(e.target.value)} error={fields.name} required autoComplete="name" />
            <TextField
              label={t('signup.password')}
              type="password"
              value={password}
              onChange={(e) => setPassword(e.target.value)}
              error={fields.password}
              hint={t('signup.password_hint')}
              required
              autoComplete="new-password"
            />
            <button type="submit" className="button button--primary" disabled={busy}>
              {busy ? t('common.working') : t('invitation.accept')}
            </button>
          </form>
        </>
      )}
      {(s.status === 'authenticated' || done) &&
        (done ? (
          <Notice tone="success">
            {t('invitation.joined', { org: done.organization.name, role: t(`role.${done.role}`) })}{' '}
            <Link to="/profile">{t('nav.profile')}</Link>
          </Notice>
        ) : (
          <>
            <p>{t('invitation.explain', { email: s.me?.user.email })}</p>
            <ProblemAlert error={error} />
            <button type="button" className="button button--primary" onClick={() => void accept()} disabled={busy}>
              {busy ? t('common.working') : t('invitation.accept')}
            </button>
          </>
        ))}
    </section>
  );
}

export function RoleSelect({ value, onChange, error }: { value: string; onChange: (v: string) => void; error?: string }) {
  const { t } = useTranslation();
  return (
    <SelectField label={t('profile.role')} value={value} onChange={(e) => onChange(e.target.value)} error={error}>
      {(['member', 'admin', 'owner'] as const).map((r) => (
        <option key={r} value={r}>
          {t(`role.${r}`)}
        </option>
      ))}
    </SelectField>
  );
}
