// Free devices per GPU model over the next days, from /testbed/availability, as an accessible table: one row a
// day, one column per four-hour block, each cell the fewest devices free during that block. Days and blocks are
// the viewer's (the browser's time zone), and the caption names the zone.

import { useTranslation } from 'react-i18next';
import { testbed } from '../api/endpoints';
import type { AvailabilitySlot } from '../api/types';
import { useAsync } from '../lib/hooks';
import { AsyncBlock } from './ui';
import i18n from '../i18n';
import { timeZoneLabel } from '../lib/format';

const BLOCK_HOURS = 4;
const DAYS = 7;

export function bucketAvailability(slots: AvailabilitySlot[], from: Date, days = DAYS) {
  const blocks = 24 / BLOCK_HOURS;
  const start = new Date(from);
  start.setHours(0, 0, 0, 0);
  const grid: (number | null)[][] = Array.from({ length: days }, () => new Array<number | null>(blocks).fill(null));
  let total = 0;
  for (const s of slots) {
    total = Math.max(total, s.total);
    const a = new Date(s.start).getTime();
    const b = new Date(s.end).getTime();
    for (let d = 0; d < days; d++) {
      for (let k = 0; k < blocks; k++) {
        // The viewer's wall clock: midnight and each block start where the viewer's zone puts them.
        const bs = new Date(start.getFullYear(), start.getMonth(), start.getDate() + d, k * BLOCK_HOURS).getTime();
        const be = bs + BLOCK_HOURS * 3600_000;
        if (a < be && b > bs) {
          const cur = grid[d][k];
          grid[d][k] = cur === null ? s.free : Math.min(cur, s.free);
        }
      }
    }
  }
  return { start, grid, total };
}

export function AvailabilityCalendar({ gpuModel, poolId }: { gpuModel: string; poolId?: string }) {
  const { t } = useTranslation();
  const from = new Date();
  const to = new Date(from.getTime() + DAYS * 24 * 3600_000);
  const av = useAsync(
    () =>
      testbed().availability({ pool_id: poolId, gpu_model: gpuModel, from: from.toISOString(), to: to.toISOString(), step: '4h' }),
    [gpuModel, poolId],
  );
  const slots = (av.data?.items ?? []).filter((s) => !s.gpu_model || s.gpu_model === gpuModel);
  const { start, grid, total } = bucketAvailability(slots, from);
  const dayFmt = new Intl.DateTimeFormat(i18n.language === 'fr' ? 'fr-CA' : 'en-CA', { weekday: 'short', day: 'numeric', month: 'short' });
  const blockLabel = (k: number) => `${String(k * BLOCK_HOURS).padStart(2, '0')}–${String((k + 1) * BLOCK_HOURS).padStart(2, '0')}h`;
  // A day starts at the viewer's midnight: a day later may not be 24 hours later across a change of clocks.
  const dayStart = (d: number) => new Date(start.getFullYear(), start.getMonth(), start.getDate() + d);
  return (
    <AsyncBlock loading={av.loading} error={av.error} empty={!av.loading && slots.length === 0} emptyText={t('availability.none')}>
      <div className="table-scroll" tabIndex={0}>
        <table className="calendar responsive">
          <caption>
            {t('availability.caption', { gpu: gpuModel })}{' '}
            <span className="calendar__zone">{t('availability.zone', { zone: timeZoneLabel(start) })}</span>
          </caption>
          <thead>
            <tr>
              <th scope="col">{t('availability.day')}</th>
              {grid[0]?.map((_, k) => (
                <th scope="col" key={k}>
                  {blockLabel(k)}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {grid.map((row, d) => (
              <tr key={d}>
                <th scope="row" data-start={dayStart(d).toISOString()}>{dayFmt.format(dayStart(d))}</th>
                {row.map((free, k) => {
                  const level = free === null ? 'unknown' : free === 0 ? 'none' : total && free < total / 2 ? 'some' : 'many';
                  return (
                    <td key={k} className={`calendar__cell calendar__cell--${level}`} data-label={blockLabel(k)}>
                      {free === null ? '—' : t('availability.free', { count: free })}
                    </td>
                  );
                })}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </AsyncBlock>
  );
}
