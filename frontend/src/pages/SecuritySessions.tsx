// The security page's "Sessions" section: the user's live sign-ins (GET /identity/sessions, cursor-paged) with the
// device, address, sign-in and last use in the viewer's locale and time zone; every other session can be ended
// (DELETE /identity/sessions/{id}: its tokens stop working everywhere within moments), one at a time or all at once.

import { useState } from 'react';
import { useTranslation } from 'react-i18next';
import { identity } from '../api/endpoints';
import { isApiError } from '../api/problem';
import type { UserSession } from '../api/types';
import { ConfirmButton, DataTable, Notice, PagedBlock, ProblemAlert } from '../components/ui';
import { formatDateTime } from '../lib/format';
import { usePaged } from '../lib/hooks';

/** otherSessionIds reads every page of the list for the sessions other than the caller's. */
async function otherSessionIds(): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await identity().sessions(cursor);
    ids.push(...page.items.filter((s) => !s.current).map((s) => s.id));
    cursor = page.next_cursor || undefined;
  } while (cursor);
  return ids;
}

/** endSession ends one session; one that has already ended (404) counts as ended. */
async function endSession(id: string) {
  try {
    await identity().endSession(id);
  } catch (e) {
    if (!(isApiError(e) && e.status === 404)) throw e;
  }
}

export function SessionsSection() {
  const { t } = useTranslation();
  const list = usePaged((cursor) => identity().sessions(cursor), []);
  const [error, setError] = useState<unknown>();
  const [done, setDone] = useState('');
  const deviceOf = (s: UserSession) => s.device || t('security.sessions_unknown_device');
  const act = async (fn: () => Promise<string>) => {
    setError(undefined);
    setDone('');
    try {
      setDone(await fn());
    } catch (e) {
      setError(e);
    }
    list.reload();
  };
  const others = list.items.some((s) => !s.current);
  return (
    <section className="security-section" aria-labelledby="sessions-title" data-testid="sessions">
      <h2 id="sessions-title">{t('security.sessions_title')}</h2>
      <p>{t('security.sessions_lead')}</p>
      {done && <Notice tone="success">{done}</Notice>}
      <ProblemAlert error={error} />
      <PagedBlock list={list} emptyText={t('security.sessions_empty')}>
        <DataTable
          caption={t('security.sessions_caption')}
          captionHidden
          columns={[t('security.sessions_device'), t('security.sessions_ip'), t('security.sessions_signed_in'), t('security.sessions_last_active'), { label: t('security.sessions_actions'), hidden: true }]}
        >
          {list.items.map((s) => (
            <tr key={s.id} data-session={s.id} data-current={s.current || undefined}>
              <th scope="row" title={s.user_agent || undefined}>
                {deviceOf(s)}
                {s.current && (
                  <>
                    {' '}
                    <span className="badge badge--current">{t('security.sessions_this_device')}</span>
                  </>
                )}
              </th>
              <td>
                {s.ip || '—'}
                {s.sign_in_ip && s.sign_in_ip !== s.ip && (
                  <div className="muted">{t('security.sessions_sign_in_ip', { ip: s.sign_in_ip })}</div>
                )}
              </td>
              <td>
                <time dateTime={s.created_at}>{formatDateTime(s.created_at)}</time>
              </td>
              <td>
                <time dateTime={s.last_used_at}>{formatDateTime(s.last_used_at)}</time>
              </td>
              <td className="actions">
                {!s.current && (
                  <ConfirmButton
                    label={t('security.session_sign_out')}
                    accessibleLabel={t('security.session_sign_out_named', { device: deviceOf(s), date: formatDateTime(s.created_at) })}
                    question={t('security.session_sign_out_question', { device: deviceOf(s) })}
                    confirmLabel={t('security.session_sign_out')}
                    onConfirm={() =>
                      act(async () => {
                        await endSession(s.id);
                        return t('security.session_ended', { device: deviceOf(s) });
                      })
                    }
                  />
                )}
              </td>
            </tr>
          ))}
        </DataTable>
      </PagedBlock>
      {others && (
        <div className="button-row">
          <ConfirmButton
            label={t('security.sessions_sign_out_others')}
            question={t('security.sessions_sign_out_others_question')}
            confirmLabel={t('security.sessions_sign_out_others')}
            onConfirm={() =>
              act(async () => {
                const ids = await otherSessionIds();
                for (const id of ids) await endSession(id);
                return t('security.sessions_others_ended', { count: ids.length });
              })
            }
          />
        </div>
      )}
    </section>
  );
}
