import { useState, type FormEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { Link } from 'react-router-dom';
import { identity } from '../api/endpoints';
import { isApiError } from '../api/problem';
import type { CreatedApiToken, OrgRole } from '../api/types';
import { useSession } from '../auth/session';
import { AsyncBlock, ConfirmButton, DataTable, Notice, PageHeader, ProblemAlert, SECURITY_PATH, StateBadge, TextAreaField, TextField } from '../components/ui';
import { formatDate, formatDateTime } from '../lib/format';
import { useAsync, useDocumentTitle } from '../lib/hooks';
import { RoleSelect } from './Auth';

export function Profile() {
  const { t } = useTranslation();
  useDocumentTitle(t('profile.title'));
  const s = useSession();
  const [switchError, setSwitchError] = useState<unknown>();
  const me = s.me;
  if (!me) return null;
  return (
    <section className="page">
      <PageHeader title={t('profile.title')}>
        <Link to="/tokens" className="button">
          {t('nav.tokens')}
        </Link>
        <Link to={SECURITY_PATH} className="button">
          {t('nav.security')}
        </Link>
      </PageHeader>
      <dl className="meta meta--stack">
        <div>
          <dt>{t('signup.name')}</dt>
          <dd>{me.user.name}</dd>
        </div>
        <div>
          <dt>{t('signup.email')}</dt>
          <dd>{me.user.email}</dd>
        </div>
        {me.user.is_staff && (
          <div>
            <dt>{t('profile.staff')}</dt>
            <dd>{t('common.yes')}</dd>
          </div>
        )}
        <div>
          <dt>{t('profile.since')}</dt>
          <dd>{formatDate(me.user.created_at)}</dd>
        </div>
      </dl>
      <h2>{t('profile.memberships')}</h2>
      <ProblemAlert error={switchError} />
      <DataTable
        columns={[
          t('profile.organization'),
          t('profile.kind'),
          t('profile.role'),
          t('profile.verified'),
          me.memberships.length > 1 && t('common.actions'),
        ]}
      >
        {me.memberships.map((m) => (
          <tr key={m.organization.id} aria-current={m.organization.id === me.active_organization_id ? 'true' : undefined}>
            <td>{m.organization.name}</td>
            <td>{t(`org_kind.${m.organization.kind}`)}</td>
            <td>{t(`role.${m.role}`)}</td>
            <td>{m.organization.verified ? t('common.yes') : t('common.no')}</td>
            {me.memberships.length > 1 && (
              <td>
                {m.organization.id === me.active_organization_id ? (
                  <span className="muted">{t('profile.acting')}</span>
                ) : (
                  <button
                    type="button"
                    className="button"
                    onClick={() => void s.switchOrganization(m.organization.id).catch(setSwitchError)}
                    aria-label={t('profile.act_for_named', { name: m.organization.name })}
                  >
                    {t('profile.act_for')}
                  </button>
                )}
              </td>
            )}
          </tr>
        ))}
      </DataTable>
      <SSHKeys />
      {s.isOrgAdmin && s.activeOrg && <Members orgId={s.activeOrg.id} />}
    </section>
  );
}

/** The user's SSH public keys, for the testbed's SSH gateway (docs/ssh.md): list, add, delete. */
function SSHKeys() {
  const { t } = useTranslation();
  const list = useAsync(() => identity().sshKeys(), []);
  const [name, setName] = useState('');
  const [key, setKey] = useState('');
  const [error, setError] = useState<unknown>();
  const [added, setAdded] = useState<string | null>(null);
  const fields = isApiError(error) ? error.fieldErrors() : {};
  const add = async (e: FormEvent) => {
    e.preventDefault();
    setError(undefined);
    setAdded(null);
    try {
      const k = await identity().addSSHKey(name.trim(), key.trim());
      setAdded(k.name);
      setName('');
      setKey('');
      list.reload();
    } catch (err) {
      setError(err);
    }
  };
  const remove = async (id: string) => {
    setError(undefined);
    setAdded(null);
    try {
      await identity().deleteSSHKey(id);
      list.reload();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <section aria-labelledby="ssh-keys-h" className="ssh-keys">
      <h2 id="ssh-keys-h">{t('ssh_keys.title')}</h2>
      <p className="lead">{t('ssh_keys.lead', { host: window.location.hostname })}</p>
      <AsyncBlock loading={list.loading} error={list.error} empty={list.data?.items.length === 0} emptyText={t('ssh_keys.none')}>
        <DataTable
          label={t('ssh_keys.title')}
          columns={[
            t('ssh_keys.name'),
            t('ssh_keys.type'),
            t('ssh_keys.fingerprint'),
            t('ssh_keys.created'),
            t('ssh_keys.last_used'),
            { label: t('common.actions'), hidden: true },
          ]}
        >
          {list.data?.items.map((k) => (
            <tr key={k.id} data-ssh-key={k.fingerprint}>
              <td>{k.name}</td>
              <td className="mono">{k.key_type}</td>
              <td className="mono ssh-keys__fingerprint">{k.fingerprint}</td>
              <td>{formatDate(k.created_at)}</td>
              <td>{k.last_used_at ? formatDateTime(k.last_used_at) : t('ssh_keys.never')}</td>
              <td>
                <ConfirmButton
                  label={t('ssh_keys.delete')}
                  accessibleLabel={t('ssh_keys.delete_named', { name: k.name })}
                  question={t('ssh_keys.delete_question', { name: k.name })}
                  confirmLabel={t('ssh_keys.delete')}
                  onConfirm={() => remove(k.id)}
                />
              </td>
            </tr>
          ))}
        </DataTable>
      </AsyncBlock>
      <form className="inline-form" onSubmit={(e) => void add(e)}>
        {added && <Notice tone="success">{t('ssh_keys.added', { name: added })}</Notice>}
        <ProblemAlert error={error} listFields={(f) => !['name', 'public_key'].includes(f)} />
        <TextAreaField
          label={t('ssh_keys.public_key')}
          hint={t('ssh_keys.public_key_hint')}
          className="mono"
          rows={3}
          spellCheck={false}
          value={key}
          onChange={(e) => setKey(e.target.value)}
          error={fields.public_key}
          required
        />
        <TextField label={t('ssh_keys.name')} hint={t('ssh_keys.name_hint')} value={name} onChange={(e) => setName(e.target.value)} error={fields.name} />
        <button type="submit" className="button button--primary">
          {t('ssh_keys.add')}
        </button>
      </form>
    </section>
  );
}

function Members({ orgId }: { orgId: string }) {
  const { t } = useTranslation();
  const list = useAsync(() => identity().members(orgId), [orgId]);
  const invitations = useAsync(() => identity().invitations(orgId), [orgId]);
  const [invError, setInvError] = useState<unknown>();
  const [resent, setResent] = useState<string | null>(null);
  const act = async (fn: () => Promise<unknown>, done?: () => void) => {
    setInvError(undefined);
    setResent(null);
    try {
      await fn();
      done?.();
      invitations.reload();
    } catch (err) {
      setInvError(err);
    }
  };
  const [email, setEmail] = useState('');
  const [role, setRole] = useState<OrgRole>('member');
  const [error, setError] = useState<unknown>();
  const [sent, setSent] = useState<string | null>(null);
  const fields = isApiError(error) ? error.fieldErrors() : {};
  const invite = async (e: FormEvent) => {
    e.preventDefault();
    setError(undefined);
    setSent(null);
    try {
      await identity().invite(orgId, email, role);
      setSent(email);
      setEmail('');
      list.reload();
      invitations.reload();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <section aria-labelledby="members-h">
      <h2 id="members-h">{t('profile.members')}</h2>
      <AsyncBlock loading={list.loading} error={list.error} empty={list.data?.items.length === 0}>
        <ul className="plain-list">
          {list.data?.items.map((m) => (
            <li key={m.user_id}>
              {m.name} &lt;{m.email}&gt; — {t(`role.${m.role}`)}
            </li>
          ))}
        </ul>
      </AsyncBlock>
      <form className="inline-form" onSubmit={(e) => void invite(e)}>
        <h3>{t('profile.invite')}</h3>
        {sent && <Notice tone="success">{t('profile.invited', { email: sent })}</Notice>}
        <ProblemAlert error={error} />
        <TextField label={t('signup.email')} type="email" value={email} onChange={(e) => setEmail(e.target.value)} error={fields.email} required />
        <RoleSelect value={role} onChange={(v) => setRole(v as OrgRole)} error={fields.role} />
        <button type="submit" className="button button--primary">
          {t('profile.send_invite')}
        </button>
      </form>
      <h3 id="invitations-h">{t('profile.invitations')}</h3>
      {resent && <Notice tone="success">{t('profile.invitation_resent', { email: resent })}</Notice>}
      <ProblemAlert error={invError} />
      <AsyncBlock loading={invitations.loading} error={invitations.error} empty={invitations.data?.items.length === 0} emptyText={t('profile.no_invitations')}>
        <DataTable label={t('profile.invitations')} columns={[t('signup.email'), t('profile.role'), t('profile.invitation_state'), t('profile.invitation_expires'), { label: t('common.actions'), hidden: true }]}>
          {invitations.data?.items.map((inv) => (
            <tr key={inv.id} data-invitation={inv.email}>
              <td>{inv.email}</td>
              <td>{t(`role.${inv.role}`)}</td>
              <td>
                <StateBadge state={inv.state} />
              </td>
              <td>{formatDate(inv.expires_at)}</td>
              <td>
                {(inv.state === 'pending' || inv.state === 'expired') && (
                  <button
                    type="button"
                    className="button"
                    aria-label={t('profile.resend_invitation_named', { email: inv.email })}
                    onClick={() => void act(() => identity().resendInvitation(orgId, inv.id), () => setResent(inv.email))}
                  >
                    {t('profile.resend_invitation')}
                  </button>
                )}{' '}
                {inv.state === 'pending' && (
                  <ConfirmButton
                    label={t('profile.revoke_invitation')}
                    accessibleLabel={t('profile.revoke_invitation_named', { email: inv.email })}
                    question={t('profile.revoke_invitation_question', { email: inv.email })}
                    confirmLabel={t('profile.revoke_invitation')}
                    onConfirm={() => act(() => identity().revokeInvitation(orgId, inv.id))}
                  />
                )}
              </td>
            </tr>
          ))}
        </DataTable>
      </AsyncBlock>
    </section>
  );
}

/** The API's token scopes: read (GET) and write (everything else). */
const SCOPES = ['read', 'write'] as const;

export function Tokens() {
  const { t } = useTranslation();
  useDocumentTitle(t('tokens.title'));
  const list = useAsync(() => identity().tokens(), []);
  const [name, setName] = useState('');
  const [scopes, setScopes] = useState<string[]>(['read']);
  const [days, setDays] = useState('90');
  const [created, setCreated] = useState<CreatedApiToken | null>(null);
  const [error, setError] = useState<unknown>();
  const fields = isApiError(error) ? error.fieldErrors() : {};
  const create = async (e: FormEvent) => {
    e.preventDefault();
    setError(undefined);
    try {
      setCreated(await identity().createToken(name, scopes, Number(days)));
      setName('');
      list.reload();
    } catch (err) {
      setError(err);
    }
  };
  const revoke = async (id: string) => {
    try {
      await identity().deleteToken(id);
      list.reload();
    } catch (err) {
      setError(err);
    }
  };
  return (
    <section className="page">
      <PageHeader title={t('tokens.title')} />
      <p className="lead">{t('tokens.lead')}</p>
      {created && (
        <div className="alert alert--success" role="status">
          <p className="alert__title">{t('tokens.created_once')}</p>
          <label htmlFor="new-token">{t('tokens.secret')}</label>
          <input id="new-token" className="mono" readOnly value={created.token} onFocus={(e) => e.target.select()} />
          <button type="button" className="button" onClick={() => void navigator.clipboard?.writeText(created.token)}>
            {t('common.copy')}
          </button>
        </div>
      )}
      <form className="inline-form" onSubmit={(e) => void create(e)}>
        <h2>{t('tokens.new')}</h2>
        <ProblemAlert error={error} listFields={(f) => !['name', 'scopes', 'expires_in_days'].includes(f)} />
        <TextField label={t('tokens.name')} value={name} onChange={(e) => setName(e.target.value)} error={fields.name} required />
        <fieldset>
          <legend>{t('tokens.scopes')}</legend>
          {SCOPES.map((sc) => (
            <label key={sc} className="check">
              <input
                type="checkbox"
                checked={scopes.includes(sc)}
                onChange={(e) => setScopes(e.target.checked ? [...scopes, sc] : scopes.filter((x) => x !== sc))}
              />
              <span>{t(`tokens.scope_${sc}`)}</span>
            </label>
          ))}
          {fields.scopes && <p className="field__error">{fields.scopes}</p>}
        </fieldset>
        <TextField label={t('tokens.expires_days')} type="number" min={1} max={366} value={days} onChange={(e) => setDays(e.target.value)} error={fields.expires_in_days} />
        <button type="submit" className="button button--primary">
          {t('tokens.create')}
        </button>
      </form>
      <h2>{t('tokens.existing')}</h2>
      <AsyncBlock loading={list.loading} error={list.error} empty={list.data?.items.length === 0} emptyText={t('tokens.none')}>
        <DataTable
          columns={[
            t('tokens.name'),
            t('tokens.scopes'),
            t('tokens.created'),
            t('tokens.expires'),
            t('tokens.last_used'),
            { label: t('common.actions'), hidden: true },
          ]}
        >
          {list.data?.items.map((tok) => (
            <tr key={tok.id}>
              <td>{tok.name}</td>
              <td className="mono">{tok.scopes.join(', ')}</td>
              <td>{formatDate(tok.created_at)}</td>
              <td>{formatDate(tok.expires_at)}</td>
              <td>{formatDateTime(tok.last_used_at)}</td>
              <td>
                <button type="button" className="button button--danger" onClick={() => void revoke(tok.id)} aria-label={t('tokens.revoke_named', { name: tok.name })}>
                  {t('tokens.revoke')}
                </button>
              </td>
            </tr>
          ))}
        </DataTable>
      </AsyncBlock>
    </section>
  );
}
