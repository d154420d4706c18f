import { lazy, Suspense, useEffect, useMemo, useRef, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { Link, useParams } from 'react-router-dom';
import { testbed } from '../api/endpoints';
import type { Sandbox, SandboxState } from '../api/types';
import { AsyncBlock, Notice, PageHeader, ProblemAlert, SelectField, StateBadge } from '../components/ui';
import { Terminal } from '../components/Terminal';
import { UnreachableBadge } from '../components/Unreachable';
import { ConfirmDialogButton } from '../components/ConfirmDialog';
import { formatBytes, formatDateTime, formatDuration } from '../lib/format';
import { creditText, holdMicro, ratePerHourMicro } from '../lib/sandboxCost';
import { useAsync, useDocumentTitle, useInterval } from '../lib/hooks';

const LIVE: SandboxState[] = ['requested', 'scheduled', 'provisioning', 'running', 'stopping'];
const STARTING: SandboxState[] = ['requested', 'scheduled', 'provisioning'];
// Ends that are the sandbox's own doing or the platform's failure: their exit code or message explains them.
// Others (stopped by the user or staff, time or credits ran out, idle) are said in words only.
const OWN_FAILURES = ['exited', 'oom_killed', 'killed', 'start_failed', 'node_lost', 'orphan', 'provisioning_interrupted', 'image_not_allowed', 'image_invalid', 'image_unavailable', 'no_capacity'];

export default function SandboxPage() {
  const { t } = useTranslation();
  const { id = '' } = useParams();
  useDocumentTitle(t('sandbox.title', { id }));
  const sb = useAsync(() => testbed().sandbox(id), [id]);
  const s = sb.data;
  const live = !!s && LIVE.includes(s.state);
  // Poll faster while the sandbox is on its way up or down, slower while it runs.
  const pollMs = !s ? null : s.state === 'running' ? 5_000 : live ? 1_500 : null;
  useInterval(() => {
    testbed().sandbox(id).then(sb.setData, () => undefined);
  }, pollMs);
  // On its way up, also wait for running with one held request, so the page shows it (and opens the terminal)
  // the moment it runs rather than at the next poll; the poll above keeps the pull's progress moving.
  const starting = !!s && STARTING.includes(s.state);
  const [waits, setWaits] = useState(0);
  useEffect(() => {
    if (!starting) return;
    let gone = false;
    testbed()
      .waitSandbox(id, 'running')
      .then(
        (v) => {
          if (gone) return;
          if (STARTING.includes(v.state)) setWaits((n) => n + 1); // timed out: wait again
          else sb.setData(v);
        },
        () => undefined,
      );
    return () => {
      gone = true;
    };
    // sb.setData is stable: a new wait starts when the sandbox, its starting or the count of waits changes.
  }, [id, starting, waits]);
  const [now, setNow] = useState(Date.now());
  useInterval(() => setNow(Date.now()), live ? 1000 : null);
  const [error, setError] = useState<unknown>();
  const [extendBy, setExtendBy] = useState('30');

  const act = async (fn: () => Promise<Sandbox>) => {
    setError(undefined);
    try {
      sb.setData(await fn());
    } catch (e) {
      setError(e);
    }
  };
  const ended = !!s && (s.state === 'stopped' || s.state === 'failed');
  const left = s?.expires_at ? (new Date(s.expires_at).getTime() - now) / 1000 : null;
  // The terminal's URL carries the access token of the moment: keep it for the sandbox, so that a token refresh
  // (every few minutes) does not reconnect the terminal and lose the shell.
  const running = s?.state === 'running';
  const terminalUrl = useMemo(() => (running ? testbed().terminalUrl(id) : null), [id, running]);
  const proxy = s?.proxy_urls?.[0];
  const openProxy = async () => {
    if (!s || !proxy) return;
    setError(undefined);
    try {
      const tok = await testbed().proxyToken(s.id);
      window.open(`${proxy}?token=${encodeURIComponent(tok.token)}`, '_blank', 'noopener');
    } catch (e) {
      setError(e);
    }
  };

  return (
    <section className="page">
      <AsyncBlock loading={sb.loading && !s} error={!s ? sb.error : undefined} onRetry={sb.reload}>
        {s && (
          <>
            <PageHeader title={t('sandbox.title', { id: s.id })}>
              <span aria-live="polite" data-testid="sandbox-state">
                <StateBadge state={s.state} />
                {s.unreachable_since && (
                  <>
                    {' '}
                    <UnreachableBadge since={s.unreachable_since} />
                  </>
                )}
              </span>
            </PageHeader>
            <ProblemAlert error={error} />
            {s.unreachable_since && (
              <Notice tone="warning">
                <p className="alert__title">{t('sandbox.unreachable_since', { at: formatDateTime(s.unreachable_since) })}</p>
                <p>{t('sandbox.unreachable_why')}</p>
              </Notice>
            )}
            {STARTING.includes(s.state) && <ProvisionSteps s={s} now={now} />}
            <dl className="stats">
              <div>
                <dt>{t('listing.gpu_model')}</dt>
                <dd>
                  {s.gpu_count} × {s.gpu_model}
                </dd>
              </div>
              <div>
                <dt>{t('sandbox.rate')}</dt>
                <dd className="money" data-testid="rate">
                  {s.price_per_gpu_hour_micro !== undefined ? t('sandbox.per_hour', { amount: creditText(ratePerHourMicro(s.price_per_gpu_hour_micro, s.gpu_count)) }) : '—'}
                </dd>
              </div>
              <div>
                <dt>{t('sandbox.time_left')}</dt>
                <dd aria-live="off" data-testid="time-left">{left !== null && live ? formatDuration(Math.max(0, left)) : '—'}</dd>
              </div>
              <div>
                <dt>{t('sandbox.usage')}</dt>
                <dd>
                  {formatDuration((s.usage_millis ?? 0) / 1000)}
                  {s.gpu_count > 1 && <span className="muted small"> × {s.gpu_count} GPU</span>}
                </dd>
              </div>
              <div>
                <dt data-testid="charge-label">{ended ? t('sandbox.total') : t('sandbox.cost_so_far')}</dt>
                <dd className="money" data-testid="charge">{creditText(s.charge_micro ?? 0)}</dd>
              </div>
              {!ended && s.price_per_gpu_hour_micro !== undefined && (
                <div>
                  <dt>{t('sandbox.projected_total')}</dt>
                  <dd className="money" data-testid="projected">{creditText(holdMicro(s.price_per_gpu_hour_micro, s.gpu_count, s.duration_minutes))}</dd>
                </div>
              )}
            </dl>
            {ended && s.stop_reason && (
              <p data-testid="end-reason" className={OWN_FAILURES.includes(s.stop_reason) ? 'alert alert--warning' : 'muted'}>
                {t(`stop_reason_sentence.${s.stop_reason}`, { defaultValue: t(`stop_reason.${s.stop_reason}`, { defaultValue: s.stop_reason }) })}
              </p>
            )}
            {(s.state === 'running' || ended) && <GpuCharts id={s.id} running={s.state === 'running'} />}
            <dl className="meta">
              <div>
                <dt>{t('sandbox.template')}</dt>
                <dd>{s.template}</dd>
              </div>
              {s.image && (
                <div>
                  <dt>{t('sandbox.image')}</dt>
                  <dd className="mono" title={s.image_digest}>
                    {s.image}
                    {s.image_digest && <span className="muted small"> {s.image_digest.slice(0, 19)}</span>}
                  </dd>
                </div>
              )}
              {s.image_listing_id && (
                <div>
                  <dt>{t('sandbox.try_of')}</dt>
                  <dd>
                    <Link to={`/listings/${encodeURIComponent(s.image_listing_id)}`}>{t('sandbox.try_of_listing')}</Link>
                  </dd>
                </div>
              )}
              <div>
                <dt>{t('sandbox.node')}</dt>
                <dd className="mono">{s.node_id ?? '—'}</dd>
              </div>
              <div>
                <dt>{t('sandbox.started')}</dt>
                <dd>{formatDateTime(s.started_at)}</dd>
              </div>
              {s.ended_at ? (
                <div>
                  <dt>{t('sandbox.ended')}</dt>
                  <dd>{formatDateTime(s.ended_at)}</dd>
                </div>
              ) : (
                <div>
                  <dt>{t('sandbox.expires')}</dt>
                  <dd>{formatDateTime(s.expires_at)}</dd>
                </div>
              )}
              {/* A stop by the user, staff, expiry, idleness or credits is said in words above; a backend message
                  ("exit code 143") is shown only for the sandbox's own failures, where it explains something. */}
              {s.message && (!s.stop_reason || OWN_FAILURES.includes(s.stop_reason)) && (
                <div>
                  <dt>{t('sandbox.message')}</dt>
                  <dd>{s.message}</dd>
                </div>
              )}
            </dl>
            {live && s.state !== 'stopping' && (
              <div className="actions">
                {proxy && s.state === 'running' && (
                  <button type="button" className="button button--primary" onClick={() => void openProxy()}>
                    {t('sandbox.open_port', { port: s.ports?.[0] })}
                  </button>
                )}
                <SelectField label={t('sandbox.extend_by')} value={extendBy} onChange={(e) => setExtendBy(e.target.value)}>
                  {[15, 30, 60, 120].map((mm) => (
                    <option key={mm} value={mm}>
                      {t('sandbox.minutes', { count: mm })}
                    </option>
                  ))}
                </SelectField>
                <button type="button" className="button" onClick={() => void act(() => testbed().extend(s.id, Number(extendBy)))}>
                  {t('sandbox.extend')}
                </button>
                <ConfirmDialogButton
                  label={t('sandbox.stop')}
                  title={t('sandbox.stop_title')}
                  question={t('sandbox.stop_question', { amount: creditText(s.charge_micro ?? 0) })}
                  confirmLabel={t('sandbox.stop_confirm')}
                  onConfirm={() => act(() => testbed().stop(s.id))}
                  testId="stop"
                />
              </div>
            )}
            {s.state === 'running' && (
              <section aria-labelledby="term-h">
                <h2 id="term-h">{t('sandbox.terminal')}</h2>
                {terminalUrl && <Terminal url={terminalUrl} label={t('sandbox.terminal')} />}
              </section>
            )}
            {/* Output exists once the backend starts the sandbox: not while its image is pulled. */}
            {!['requested', 'scheduled', 'provisioning'].includes(s.state) && <Logs id={s.id} live={live} />}
          </>
        )}
      </AsyncBlock>
    </section>
  );
}

function Logs({ id, live }: { id: string; live: boolean }) {
  const { t } = useTranslation();
  const [lines, setLines] = useState<string[]>([]);
  const [status, setStatus] = useState<'connecting' | 'open' | 'closed'>('connecting');
  const box = useRef<HTMLPreElement>(null);
  useEffect(() => {
    if (typeof EventSource === 'undefined') return;
    // Each stream replays the output from the start: begin afresh (e.g. when the sandbox stops and we reconnect).
    setLines([]);
    setStatus('connecting');
    const es = new EventSource(testbed().logsUrl(id));
    es.onopen = () => setStatus('open');
    // One "log" event per line, then "end" once the sandbox's output is over.
    es.addEventListener('log', (ev) => setLines((l) => [...l.slice(-1999), String((ev as MessageEvent).data)]));
    es.addEventListener('end', () => {
      setStatus('closed');
      es.close();
    });
    es.onerror = () => {
      setStatus('closed');
      if (!live) es.close();
    };
    return () => es.close();
  }, [id, live]);
  useEffect(() => {
    const el = box.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [lines]);
  return (
    <section aria-labelledby="logs-h">
      <h2 id="logs-h">
        {t('sandbox.logs')} <span className="muted small">({t(`sandbox.logs_${status}`)})</span>
      </h2>
      <pre ref={box} className="logs" tabIndex={0} aria-label={t('sandbox.logs')}>
        {lines.length ? lines.join('\n') : t('sandbox.no_logs')}
      </pre>
    </section>
  );
}

/** ProvisionSteps shows a starting sandbox's way up: scheduled, the image pulled (with bytes when the pull reports
 * them, else an honest indeterminate step), started; with the time since the launch. */
function ProvisionSteps({ s, now }: { s: Sandbox; now: number }) {
  const { t } = useTranslation();
  const phase = s.progress?.phase;
  // 0 scheduled, 1 image, 2 starting
  const at = s.state !== 'provisioning' ? 0 : phase === 'starting' ? 2 : 1;
  const elapsed = Math.max(0, (now - new Date(s.created_at).getTime()) / 1000);
  const p = s.progress;
  const bytes = p && phase !== 'starting' && p.total_bytes > 0;
  const steps = [
    t('sandbox.step_scheduled'),
    phase === 'unpacking' ? t('sandbox.step_unpacking') : t('sandbox.step_pulling'),
    t('sandbox.step_starting'),
  ];
  return (
    <section aria-labelledby="steps-h" className="provision" data-testid="provision-steps">
      <h2 id="steps-h" className="h3">
        {t('sandbox.steps_title')} <span className="muted small" data-testid="elapsed">{t('sandbox.elapsed', { time: formatDuration(elapsed) })}</span>
      </h2>
      <ol className="steps">
        {steps.map((label, i) => (
          <li key={i} className={`steps__item steps__item--${i < at ? 'done' : i === at ? 'current' : 'todo'}`} aria-current={i === at ? 'step' : undefined}>
            <span>{label}</span>
            <span className="visually-hidden"> — {t(i < at ? 'sandbox.step_done' : i === at ? 'sandbox.step_current' : 'sandbox.step_todo')}</span>
            {i === 1 && i === at && (
              <span className="muted small" data-testid="sandbox-progress" aria-live="polite">
                {' '}
                {bytes ? (
                  <>
                    {t(`sandbox.progress_${phase}`, { defaultValue: phase, done: formatBytes(p.done_bytes), total: formatBytes(p.total_bytes) })}{' '}
                    <progress value={p.done_bytes} max={p.total_bytes} aria-hidden="true" />
                  </>
                ) : (
                  <>
                    {t('sandbox.progress_unknown')} <progress aria-hidden="true" />
                  </>
                )}
              </span>
            )}
          </li>
        ))}
      </ol>
    </section>
  );
}

const GpuChart = lazy(() => import('../components/GpuChart'));

/** GpuCharts draws the sandbox's GPU utilisation and memory from the testbed's samples, or says they are not
 * measured (declared devices, no nvidia-smi on the host that runs it) rather than draw a flat zero. */
function GpuCharts({ id, running }: { id: string; running: boolean }) {
  const { t } = useTranslation();
  const m = useAsync(() => testbed().gpuSamples(id), [id]);
  useInterval(() => {
    testbed().gpuSamples(id).then(m.setData, () => undefined);
  }, running ? 10_000 : null);
  const d = m.data;
  return (
    <section aria-labelledby="gpu-h" data-testid="gpu-metrics">
      <h2 id="gpu-h">{t('sandbox.gpu_title')}</h2>
      {m.error ? (
        <ProblemAlert error={m.error} />
      ) : !d ? null : !d.measured ? (
        <p className="muted" data-testid="gpu-not-measured">
          {t('sandbox.gpu_not_measured')} {t(`sandbox.gpu_not_measured_${d.not_measured_reason ?? 'no_sampler'}`, { defaultValue: '' })}
        </p>
      ) : d.items.length === 0 ? (
        <p className="muted">{t('sandbox.gpu_no_samples')}</p>
      ) : (
        <Suspense fallback={<p className="muted">{t('common.loading')}</p>}>
          <GpuChart samples={d.items} />
        </Suspense>
      )}
    </section>
  );
}
