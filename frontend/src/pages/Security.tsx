// Security settings (/account/security): two-step sign-in (TOTP). Enrolment asks for the password, shows the secret
// once (as a QR code, the otpauth:// URI and the secret to type), turns it on with a first code and then shows the
// ten recovery codes once; recovery codes can be replaced; turning it off asks for the password and a code.
// Staff act as staff only in a session signed in with a code: after enrolling, the page offers to sign in again.
// Below, the account's signed-in sessions (SecuritySessions.tsx).

import { useEffect, useRef, useState, type FormEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { useNavigate } from 'react-router-dom';
import { QRCodeSVG } from 'qrcode.react';
import { identity } from '../api/endpoints';
import type { MFAEnrolment, MFAStatus } from '../api/types';
import { useSession } from '../auth/session';
import { AsyncBlock, CopyField, Notice, PageHeader, ProblemAlert, SECURITY_PATH, TextField } from '../components/ui';
import { formatDateTime } from '../lib/format';
import { useAsync, useDocumentTitle, useSubmit } from '../lib/hooks';
import { normalizeCode } from './Auth';
import { SessionsSection } from './SecuritySessions';

type Stage = 'idle' | 'password' | 'scan';

export default function Security() {
  const { t } = useTranslation();
  useDocumentTitle(t('security.title'));
  const ids = identity();
  const status = useAsync(() => ids.mfa(), []);
  // Recovery codes are shown once, until the person says they kept them (the status may reload meanwhile).
  const [codes, setCodes] = useState<string[] | null>(null);
  const [justEnabled, setJustEnabled] = useState(false);
  const [done, setDone] = useState('');
  const st = status.data;
  return (
    <section className="page narrow">
      <PageHeader title={t('security.title')} />
      <h2>{t('security.mfa_title')}</h2>
      <p>{t('security.mfa_lead')}</p>
      <AsyncBlock loading={status.loading && !st} error={status.error} onRetry={status.reload}>
        {st && <StatusList st={st} />}
        {done && <Notice tone="success">{done}</Notice>}
        {codes ? (
          <RecoveryCodesPanel
            codes={codes}
            justEnabled={justEnabled}
            onDone={() => {
              setCodes(null);
              setJustEnabled(false);
            }}
          />
        ) : st && !st.enabled ? (
          <Enrol
            required={st.required}
            onEnabled={(c) => {
              setDone('');
              setJustEnabled(true);
              setCodes(c);
              status.reload();
            }}
          />
        ) : st ? (
          <>
            <Regenerate
              onCodes={(c) => {
                setDone('');
                setCodes(c);
                status.reload();
              }}
            />
            <Disable
              required={st.required}
              onDisabled={() => {
                setDone(t('security.disabled'));
                status.reload();
              }}
            />
          </>
        ) : null}
      </AsyncBlock>
      <SessionsSection />
    </section>
  );
}

function StatusList({ st }: { st: MFAStatus }) {
  const { t } = useTranslation();
  return (
    <>
      <dl className="meta meta--stack" data-testid="mfa-status">
        <div>
          <dt>{t('security.status')}</dt>
          <dd>{st.enabled ? t('security.status_on', { date: formatDateTime(st.enabled_at) }) : t('security.status_off')}</dd>
        </div>
        {st.enabled && (
          <div>
            <dt>{t('security.codes_left_label')}</dt>
            <dd>{t('security.codes_left', { count: st.recovery_codes_left })}</dd>
          </div>
        )}
      </dl>
      {st.required && !st.enabled && <Notice tone="warning">{t('security.required')}</Notice>}
      {st.enabled && st.recovery_codes_left <= 2 && <Notice tone="warning">{t('security.codes_low')}</Notice>}
    </>
  );
}

/** useFocusOnMount focuses an element when it appears (each step of a form moves the focus to its first field). */
function useFocusOnMount<T extends HTMLElement>() {
  const ref = useRef<T>(null);
  useEffect(() => ref.current?.focus(), []);
  return ref;
}

function Enrol({ required, onEnabled }: { required: boolean; onEnabled: (codes: string[]) => void }) {
  const { t } = useTranslation();
  const [stage, setStage] = useState<Stage>('idle');
  const [enrolment, setEnrolment] = useState<MFAEnrolment | null>(null);
  const start = useRef<HTMLButtonElement>(null);
  const back = useRef(false);
  useEffect(() => {
    if (stage === 'idle' && back.current) start.current?.focus();
    back.current = false;
  }, [stage]);
  const cancel = () => {
    back.current = true;
    setEnrolment(null);
    setStage('idle');
  };
  if (stage === 'idle') {
    return (
      <button ref={start} type="button" className="button button--primary" onClick={() => setStage('password')}>
        {t('security.turn_on')}
      </button>
    );
  }
  if (stage === 'password' || !enrolment) {
    return (
      <PasswordStep
        onCancel={cancel}
        onEnrolled={(e) => {
          setEnrolment(e);
          setStage('scan');
        }}
      />
    );
  }
  return <ScanStep enrolment={enrolment} required={required} onCancel={cancel} onEnabled={onEnabled} />;
}

function PasswordStep({ onEnrolled, onCancel }: { onEnrolled: (e: MFAEnrolment) => void; onCancel: () => void }) {
  const { t } = useTranslation();
  const [password, setPassword] = useState('');
  const form = useSubmit();
  const field = useFocusOnMount<HTMLInputElement>();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    await form.run(
      (): Record<string, string> => (password ? {} : { password: t('security.password_required') }),
      async () => onEnrolled(await identity().enrolTOTP(password)),
    );
  };
  return (
    <form onSubmit={(e) => void submit(e)} noValidate aria-labelledby="enrol-title">
      <h3 id="enrol-title">{t('security.turn_on')}</h3>
      <p>{t('security.password_lead')}</p>
      <ProblemAlert error={form.error} />
      <TextField
        ref={field}
        label={t('signup.password')}
        name="password"
        type="password"
        value={password}
        onChange={(e) => setPassword(e.target.value)}
        error={form.fields.password}
        required
        autoComplete="current-password"
      />
      <div className="button-row">
        <button type="submit" className="button button--primary" disabled={form.busy}>
          {form.busy ? t('common.working') : t('security.continue')}
        </button>
        <button type="button" className="button" onClick={onCancel}>
          {t('common.cancel')}
        </button>
      </div>
    </form>
  );
}

function ScanStep({ enrolment, required, onEnabled, onCancel }: { enrolment: MFAEnrolment; required: boolean; onEnabled: (codes: string[]) => void; onCancel: () => void }) {
  const { t } = useTranslation();
  const [code, setCode] = useState('');
  const form = useSubmit();
  const heading = useFocusOnMount<HTMLHeadingElement>();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const value = normalizeCode(code);
    await form.run(
      (): Record<string, string> => (/^\d{6}$/.test(value) ? {} : { code: t('mfa.code_format') }),
      async () => onEnabled((await identity().confirmTOTP(value)).recovery_codes),
    );
  };
  return (
    <form onSubmit={(e) => void submit(e)} noValidate aria-labelledby="scan-title">
      <h3 id="scan-title" ref={heading} tabIndex={-1}>
        {t('security.scan_title')}
      </h3>
      <p>{t('security.scan_lead')}</p>
      {required && <p className="muted">{t('security.scan_required')}</p>}
      <div className="qr">
        <QRCodeSVG value={enrolment.otpauth_uri} size={192} marginSize={2} role="img" aria-label={t('security.qr_label')} title={t('security.qr_label')} />
      </div>
      <CopyField label={t('security.secret')} value={enrolment.secret} copyLabel={t('security.copy_secret')} />
      <p className="field__hint">{t('security.secret_hint', { digits: enrolment.digits, period: enrolment.period })}</p>
      <CopyField label={t('security.uri')} value={enrolment.otpauth_uri} copyLabel={t('security.copy_uri')} multiline />
      <CodeAlert error={form.error} />
      <TextField
        label={t('security.first_code')}
        name="code"
        value={code}
        onChange={(e) => setCode(e.target.value)}
        error={form.fields.code}
        hint={t('mfa.code_hint')}
        required
        inputMode="numeric"
        autoComplete="one-time-code"
        maxLength={7}
      />
      <div className="button-row">
        <button type="submit" className="button button--primary" disabled={form.busy}>
          {form.busy ? t('common.working') : t('security.confirm')}
        </button>
        <button type="button" className="button" onClick={onCancel}>
          {t('common.cancel')}
        </button>
      </div>
    </form>
  );
}

function isWrongCode(e: unknown): boolean {
  return typeof e === 'object' && e !== null && (e as { code?: string }).code === 'invalid_mfa_code';
}

function WrongCode({ recovery }: { recovery?: boolean }) {
  const { t } = useTranslation();
  return (
    <div className="alert alert--error" role="alert">
      <p className="alert__title">{recovery ? t('mfa.error_wrong_recovery') : t('mfa.error_wrong_code')}</p>
    </div>
  );
}

/** CodeAlert shows a wrong code in the person's language and any other problem as it came. */
function CodeAlert({ error, recovery }: { error: unknown; recovery?: boolean }) {
  return isWrongCode(error) ? <WrongCode recovery={recovery} /> : <ProblemAlert error={error} />;
}

function RecoveryCodesPanel({ codes, justEnabled, onDone }: { codes: string[]; justEnabled: boolean; onDone: () => void }) {
  const { t } = useTranslation();
  const { me, signOut } = useSession();
  const navigate = useNavigate();
  const heading = useFocusOnMount<HTMLHeadingElement>();
  const text = codes.join('\n');
  const download = () => {
    const blob = new Blob([`${t('security.codes_file_header', { email: me?.user.email ?? '' })}\n\n${text}\n`], { type: 'text/plain' });
    const url = URL.createObjectURL(blob);
    const a = document.createElement('a');
    a.href = url;
    a.download = 'tamarack-recovery-codes.txt';
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  };
  return (
    <div className="recovery-panel">
      {justEnabled && <Notice tone="success">{t('security.enabled')}</Notice>}
      <h3 ref={heading} tabIndex={-1}>
        {t('security.codes_title')}
      </h3>
      <Notice tone="warning">{t('security.codes_warning')}</Notice>
      <ul className="recovery-codes" aria-label={t('security.codes_title')} data-testid="recovery-codes">
        {codes.map((c) => (
          <li key={c}>{c}</li>
        ))}
      </ul>
      <CopyField label={t('security.codes_copy_label')} value={text} copyLabel={t('security.copy_codes')} multiline />
      <div className="button-row">
        <button type="button" className="button" onClick={download}>
          {t('security.download_codes')}
        </button>
        <button type="button" className="button button--primary" onClick={onDone}>
          {t('security.codes_saved')}
        </button>
      </div>
      {justEnabled && (
        <div className="security-section">
          <p>{t('security.sign_in_again_lead')}</p>
          <button
            type="button"
            className="button"
            onClick={() => void signOut().then(() => navigate(`/signin?next=${encodeURIComponent(SECURITY_PATH)}`))}
          >
            {t('security.sign_in_again')}
          </button>
        </div>
      )}
    </div>
  );
}

function Regenerate({ onCodes }: { onCodes: (codes: string[]) => void }) {
  const { t } = useTranslation();
  const [code, setCode] = useState('');
  const form = useSubmit();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const value = normalizeCode(code);
    await form.run(
      (): Record<string, string> => (/^\d{6}$/.test(value) ? {} : { code: t('mfa.code_format') }),
      async () => onCodes((await identity().regenerateRecoveryCodes(value)).recovery_codes),
    );
  };
  return (
    <form onSubmit={(e) => void submit(e)} noValidate aria-labelledby="regen-title">
      <h3 id="regen-title">{t('security.regenerate_title')}</h3>
      <p>{t('security.regenerate_lead')}</p>
      <CodeAlert error={form.error} />
      <TextField
        label={t('mfa.code')}
        name="code"
        value={code}
        onChange={(e) => setCode(e.target.value)}
        error={form.fields.code}
        required
        inputMode="numeric"
        autoComplete="one-time-code"
        maxLength={7}
      />
      <button type="submit" className="button" disabled={form.busy}>
        {form.busy ? t('common.working') : t('security.regenerate')}
      </button>
    </form>
  );
}

function Disable({ required, onDisabled }: { required: boolean; onDisabled: () => void }) {
  const { t } = useTranslation();
  const [password, setPassword] = useState('');
  const [code, setCode] = useState('');
  const [recovery, setRecovery] = useState(false);
  const form = useSubmit();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const value = recovery ? code.trim() : normalizeCode(code);
    await form.run(
      () => {
        const errs: Record<string, string> = {};
        if (!password) errs.password = t('security.password_required');
        if (!recovery && !/^\d{6}$/.test(value)) errs.code = t('mfa.code_format');
        if (recovery && value.replace(/[\s-]/g, '').length !== 16) errs.recovery_code = t('mfa.recovery_format');
        return errs;
      },
      async () => {
        await identity().disableMFA(password, recovery ? { recovery_code: value } : { code: value });
        onDisabled();
      },
    );
  };
  return (
    <form onSubmit={(e) => void submit(e)} noValidate aria-labelledby="disable-title">
      <h3 id="disable-title">{t('security.turn_off')}</h3>
      <p>{required ? t('security.turn_off_required') : t('security.turn_off_lead')}</p>
      <CodeAlert error={form.error} recovery={recovery} />
      <TextField
        label={t('signup.password')}
        name="password"
        type="password"
        value={password}
        onChange={(e) => setPassword(e.target.value)}
        error={form.fields.password}
        required
        autoComplete="current-password"
      />
      <TextField
        key={recovery ? 'recovery' : 'code'}
        label={recovery ? t('mfa.recovery_code') : t('mfa.code')}
        name={recovery ? 'recovery_code' : 'code'}
        value={code}
        onChange={(e) => setCode(e.target.value)}
        error={recovery ? form.fields.recovery_code : form.fields.code}
        required
        inputMode={recovery ? undefined : 'numeric'}
        autoComplete={recovery ? 'off' : 'one-time-code'}
      />
      <p>
        <button
          type="button"
          className="button button--link"
          onClick={() => {
            setRecovery((r) => !r);
            setCode('');
          }}
        >
          {recovery ? t('mfa.use_app') : t('mfa.use_recovery')}
        </button>
      </p>
      <button type="submit" className="button button--danger" disabled={form.busy}>
        {form.busy ? t('common.working') : t('security.turn_off')}
      </button>
    </form>
  );
}
