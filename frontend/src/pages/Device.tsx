// The device login page, /device?code=…: a program without a browser (the CLI's `tamarack login`) shows a code and
// this address; the signed-in user enters or confirms the code, sees what is asking (GET /identity/device/{code}),
// and approves or denies it. Approving gives that program a session of the user's own (it shows among their
// sessions); the program learns the answer by polling, so the page ends with "return to your terminal".

import { useEffect, useRef, useState, type FormEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { useSearchParams } from 'react-router-dom';
import { identity } from '../api/endpoints';
import { isApiError } from '../api/problem';
import type { DeviceLoginRequest } from '../api/types';
import { Notice, ProblemAlert, TextField } from '../components/ui';
import { formatDateTime } from '../lib/format';
import { useDocumentTitle } from '../lib/hooks';

/** The problems a person can act on, in the UI's words; others show as the server's problem. */
const KNOWN = ['device_code_not_found', 'device_code_expired', 'device_code_decided', 'rate_limited'] as const;

function DeviceError({ error }: { error: unknown }) {
  const { t } = useTranslation();
  if (isApiError(error) && (KNOWN as readonly string[]).includes(error.code)) {
    return (
      <div className="alert alert--error" role="alert" data-code={error.code}>
        <p className="alert__title">{t(`device.error.${error.code}_title`)}</p>
        <p className="alert__detail">{t(`device.error.${error.code}_body`)}</p>
      </div>
    );
  }
  return <ProblemAlert error={error} />;
}

export default function Device() {
  const { t } = useTranslation();
  useDocumentTitle(t('device.title'));
  const [params] = useSearchParams();
  const initial = params.get('code') ?? '';
  const [code, setCode] = useState(initial);
  const [request, setRequest] = useState<DeviceLoginRequest | null>(null);
  const [decided, setDecided] = useState<'approved' | 'denied' | null>(null);
  const [error, setError] = useState<unknown>();
  const [busy, setBusy] = useState(false);

  const look = async (c: string) => {
    setError(undefined);
    setRequest(null);
    setBusy(true);
    try {
      setRequest(await identity().deviceRequest(c.trim()));
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  // A link with ?code= shows the request at once (once, also under React's strict mode).
  const looked = useRef('');
  useEffect(() => {
    if (!initial || looked.current === initial) return;
    looked.current = initial;
    void look(initial);
  }, [initial]);

  const decide = async (approve: boolean) => {
    if (!request) return;
    setError(undefined);
    setBusy(true);
    try {
      const r = approve ? await identity().approveDevice(request.user_code) : await identity().denyDevice(request.user_code);
      setDecided(r.status === 'approved' ? 'approved' : 'denied');
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };

  const submit = (ev: FormEvent) => {
    ev.preventDefault();
    if (code.trim()) void look(code);
  };

  if (decided) {
    return (
      <section className="page narrow device-page">
        <h1>{t('device.title')}</h1>
        <Notice tone={decided === 'approved' ? 'success' : 'info'}>
          <p className="device-done__title">{t(decided === 'approved' ? 'device.approved' : 'device.denied')}</p>
          <p>{t('device.return_to_terminal')}</p>
        </Notice>
      </section>
    );
  }

  return (
    <section className="page narrow device-page">
      <h1>{t('device.title')}</h1>
      <p>{t('device.lead')}</p>
      {!request && (
        <form onSubmit={submit} className="device-form" noValidate>
          <TextField
            label={t('device.code_label')}
            hint={t('device.code_hint')}
            value={code}
            onChange={(ev) => setCode(ev.target.value.toUpperCase())}
            autoComplete="off"
            autoCapitalize="characters"
            spellCheck={false}
            maxLength={20}
            className="device-code-input"
            required
          />
          <div className="button-row">
            <button type="submit" className="button button--primary" disabled={busy || !code.trim()}>
              {t('device.continue')}
            </button>
          </div>
        </form>
      )}
      <DeviceError error={error} />
      {request && request.status !== 'pending' && (
        <Notice tone="warning">
          <p>{t('device.already_decided')}</p>
        </Notice>
      )}
      {request && request.status === 'pending' && (
        <div className="device-request" data-testid="device-request">
          <h2>{t('device.asking_title')}</h2>
          <dl className="device-facts">
            <dt>{t('device.code')}</dt>
            <dd>
              <code className="device-code">{request.user_code}</code>
            </dd>
            <dt>{t('device.client')}</dt>
            <dd>{request.client_name || request.device || t('device.unknown_client')}</dd>
            {request.device && request.client_name && (
              <>
                <dt>{t('device.program')}</dt>
                <dd>{request.device}</dd>
              </>
            )}
            <dt>{t('device.ip')}</dt>
            <dd>{request.ip || '—'}</dd>
            <dt>{t('device.requested')}</dt>
            <dd>
              <time dateTime={request.created_at}>{formatDateTime(request.created_at)}</time>
            </dd>
            <dt>{t('device.expires')}</dt>
            <dd>
              <time dateTime={request.expires_at}>{formatDateTime(request.expires_at)}</time>
            </dd>
          </dl>
          <Notice tone="warning">
            <p>{t('device.warning')}</p>
          </Notice>
          <div className="button-row">
            <button type="button" className="button button--primary" disabled={busy} onClick={() => void decide(true)}>
              {t('device.approve')}
            </button>
            <button type="button" className="button" disabled={busy} onClick={() => void decide(false)}>
              {t('device.deny')}
            </button>
          </div>
        </div>
      )}
    </section>
  );
}
