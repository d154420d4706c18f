import { useTranslation } from 'react-i18next';
import { formatDateTime } from '../lib/format';

// A sandbox whose site agent does not answer (`unreachable_since` is set) may still run on the vendor's host, but
// it is not metered until the agent answers again. Lists show the badge with the short reason beside it; the
// sandbox page shows the badge beside its state and a notice with the time.

export function UnreachableBadge({ since }: { since: string }) {
  const { t } = useTranslation();
  return (
    <span className="badge badge--unreachable" title={t('sandbox.unreachable_since', { at: formatDateTime(since) })}>
      {t('sandbox.unreachable')}
    </span>
  );
}

/** Unreachable is the badge with its reason, for a list row. */
export function Unreachable({ since }: { since: string }) {
  const { t } = useTranslation();
  return (
    <span className="unreachable">
      <UnreachableBadge since={since} /> <span className="small muted">{t('sandbox.unreachable_why')}</span>
    </span>
  );
}
