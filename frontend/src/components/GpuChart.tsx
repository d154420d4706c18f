// The sandbox page's GPU charts (loaded on demand with recharts): utilisation and memory over time from the
// testbed's samples. The latest values are also written out, for those who do not read charts.

import { useTranslation } from 'react-i18next';
import { CartesianGrid, Line, LineChart, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts';
import type { SandboxGPUMetrics } from '../api/types';
import { formatNumber } from '../lib/format';
import i18n from '../i18n';

const formatTime = (iso: string) => new Date(iso).toLocaleTimeString(i18n.language, { hour: '2-digit', minute: '2-digit', second: '2-digit' });

export default function GpuChart({ samples }: { samples: SandboxGPUMetrics['items'] }) {
  const { t } = useTranslation();
  const data = samples.map((x) => ({
    at: formatTime(x.at),
    util: x.utilization_pct,
    mem: Math.round(x.memory_used_mib / 1024 * 10) / 10,
  }));
  const last = samples[samples.length - 1];
  const totalGiB = last ? Math.round((last.memory_total_mib / 1024) * 10) / 10 : 0;
  return (
    <div className="gpu-charts">
      <p data-testid="gpu-latest">
        {t('sandbox.gpu_latest', {
          util: last?.utilization_pct === null || last?.utilization_pct === undefined ? t('sandbox.gpu_util_unknown') : `${last.utilization_pct} %`,
          used: formatNumber(Math.round((last?.memory_used_mib ?? 0) / 102.4) / 10),
          total: formatNumber(totalGiB),
        })}
      </p>
      <figure className="chart">
        <figcaption>{t('sandbox.gpu_util')}</figcaption>
        <ResponsiveContainer width="100%" height={180}>
          <LineChart data={data}>
            <CartesianGrid strokeDasharray="3 3" />
            <XAxis dataKey="at" />
            <YAxis domain={[0, 100]} unit="%" />
            <Tooltip />
            <Line type="monotone" dataKey="util" name={t('sandbox.gpu_util')} stroke="#2f6b3a" dot={false} isAnimationActive={false} connectNulls={false} />
          </LineChart>
        </ResponsiveContainer>
      </figure>
      <figure className="chart">
        <figcaption>{t('sandbox.gpu_memory', { total: formatNumber(totalGiB) })}</figcaption>
        <ResponsiveContainer width="100%" height={180}>
          <LineChart data={data}>
            <CartesianGrid strokeDasharray="3 3" />
            <XAxis dataKey="at" />
            <YAxis domain={[0, totalGiB || 'auto']} unit=" GiB" />
            <Tooltip />
            <Line type="monotone" dataKey="mem" name={t('sandbox.gpu_memory_used')} stroke="#3b5b92" dot={false} isAnimationActive={false} />
          </LineChart>
        </ResponsiveContainer>
      </figure>
    </div>
  );
}
