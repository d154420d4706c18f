import { useState, type FormEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { Link, useNavigate, useParams, useSearchParams } from 'react-router-dom';
import { api } from '../api/client';
import { identity } from '../api/endpoints';
import { isApiError } from '../api/problem';
import type { AcceptedInvitation, OrgKind } from '../api/types';
import { useSession } from '../auth/session';
import { Loading, Notice, ProblemAlert, SelectField, TextField } from '../components/ui';
import { useDocumentTitle } from '../lib/hooks';

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
  const fields = isApiError(error) ? error.fieldErrors() : {};
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      await signIn(email, password);
      navigate(safeNext(params.get('next')));
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <section className="page narrow">
      <h1>{t('signin.title')}</h1>
      {params.get('reset') === 'done' && <Notice tone="success">{t('reset.done')}</Notice>}
      <form onSubmit={(e) => void submit(e)} noValidate>
        <ProblemAlert error={error} />
        <TextField label={t('signup.email')} name="email" type="email" value={email} onChange={(e) => setEmail(e.target.value)} error={fields.email} required autoComplete="email" />
        <TextField label={t('signup.password')} name="password" type="password" value={password} onChange={(e) => setPassword(e.target.value)} error={fields.password} required autoComplete="current-password" />
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
