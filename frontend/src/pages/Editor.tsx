// The vendor's listing editor: one form for the three kinds (compute adds GPU model and price per GPU-hour), a live
// Markdown preview of the card, plans with prices, and artifact uploads with progress and sha256.

import { useEffect, useRef, useState, type FormEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { useNavigate, useParams } from 'react-router-dom';
import { marketplace } from '../api/endpoints';
import { isApiError } from '../api/problem';
import { uploadArtifact, type UploadHandle } from '../api/upload';
import { formatMicro, parseCredits, toMicro } from '../api/money';
import type { Artifact, Listing, ListingInput, ListingKind, PlanInput, PlanKind } from '../api/types';
import { MarkdownPreview } from '../components/Html';
import { AsyncBlock, Notice, PageHeader, ProblemAlert, SelectField, StateBadge, TextAreaField, TextField } from '../components/ui';
import { formatBytes } from '../lib/format';
import { useAsync, useDocumentTitle } from '../lib/hooks';
import i18n from '../i18n';

interface PlanDraft {
  id?: string;
  name: string;
  kind: PlanKind;
  price: string;
  description: string;
}

interface Draft {
  kind: ListingKind;
  title: string;
  summary: string;
  license: string;
  residency: string;
  tags: string;
  gated: boolean;
  card_markdown: string;
  gpu_model: string;
  price_per_gpu_hour: string;
  plans: PlanDraft[];
}

const EMPTY: Draft = {
  kind: 'model',
  title: '',
  summary: '',
  license: '',
  residency: 'CA',
  tags: '',
  gated: false,
  card_markdown: '',
  gpu_model: '',
  price_per_gpu_hour: '',
  plans: [{ name: 'Free', kind: 'free', price: '0', description: '' }],
};

function microText(micro: number | undefined): string {
  return micro === undefined ? '' : formatMicro(toMicro(micro), 'en').replace(/,/g, '');
}

export function fromListing(l: Listing): Draft {
  const v = l.current_version ?? l.versions?.[l.versions.length - 1];
  return {
    kind: l.kind,
    title: v?.title ?? l.title,
    summary: v?.summary ?? l.summary,
    license: v?.license ?? l.license,
    residency: l.residency,
    tags: (l.tags ?? []).join(', '),
    gated: l.gated,
    card_markdown: v?.card_markdown ?? l.card_markdown ?? '',
    gpu_model: l.compute?.gpu_model ?? '',
    price_per_gpu_hour: microText(l.compute?.price_per_gpu_hour_micro),
    plans: (l.plans ?? []).map((p) => ({ id: p.id, name: p.name, kind: p.kind, price: microText(p.price_micro), description: p.description ?? '' })),
  };
}

/** toInput converts the form to the API's input; amounts typed in credits become integer micro-credits. */
export function toInput(d: Draft): { input: ListingInput; errors: Record<string, string> } {
  const errors: Record<string, string> = {};
  const plans: PlanInput[] = d.plans.map((p, i) => {
    const micro = p.kind === 'free' ? 0n : parseCredits(p.price);
    if (micro === null || micro < 0n) errors[`plans.${i}.price_micro`] = i18n.t('editor.bad_amount');
    return { id: p.id, name: p.name, kind: p.kind, description: p.description, price_micro: Number(micro ?? 0n) };
  });
  let compute: ListingInput['compute'] = null;
  if (d.kind === 'compute') {
    const price = parseCredits(d.price_per_gpu_hour);
    if (price === null || price < 0n) errors['compute.price_per_gpu_hour_micro'] = i18n.t('editor.bad_amount');
    compute = { gpu_model: d.gpu_model, price_per_gpu_hour_micro: Number(price ?? 0n) };
  }
  return {
    input: {
      kind: d.kind,
      title: d.title,
      summary: d.summary,
      license: d.license,
      residency: d.residency,
      tags: d.tags.split(',').map((s) => s.trim()).filter(Boolean),
      gated: d.gated,
      card_markdown: d.card_markdown,
      plans,
      compute,
    },
    errors,
  };
}

export default function Editor() {
  const { id } = useParams();
  const loaded = useAsync(() => (id ? marketplace().listing(id) : Promise.resolve(null)), [id]);
  return (
    <AsyncBlock loading={loaded.loading} error={loaded.error}>
      <EditorForm key={id ?? 'new'} listing={loaded.data ?? null} onSaved={(l) => loaded.setData(l)} />
    </AsyncBlock>
  );
}

function EditorForm({ listing, onSaved }: { listing: Listing | null; onSaved: (l: Listing) => void }) {
  const { t } = useTranslation();
  const navigate = useNavigate();
  const [d, setD] = useState<Draft>(listing ? fromListing(listing) : EMPTY);
  const [error, setError] = useState<unknown>();
  const [localErrors, setLocalErrors] = useState<Record<string, string>>({});
  const [saved, setSaved] = useState(false);
  const [busy, setBusy] = useState(false);
  useDocumentTitle(listing ? t('editor.edit_title', { title: listing.title }) : t('editor.new_title'));
  const version = listing?.current_version ?? listing?.versions?.[listing.versions.length - 1];
  const editable = !listing || !version || version.state === 'draft' || version.state === 'changes_requested';
  const fields = { ...(isApiError(error) ? error.fieldErrors() : {}), ...localErrors };
  const set = <K extends keyof Draft>(k: K, v: Draft[K]) => setD((prev) => ({ ...prev, [k]: v }));
  const setPlan = (i: number, p: Partial<PlanDraft>) => set('plans', d.plans.map((x, j) => (j === i ? { ...x, ...p } : x)));

  const save = async (e: FormEvent) => {
    e.preventDefault();
    setError(undefined);
    setSaved(false);
    const { input, errors } = toInput(d);
    setLocalErrors(errors);
    if (Object.keys(errors).length) return;
    setBusy(true);
    try {
      if (!listing) {
        const created = await marketplace().createListing(input);
        navigate(`/vendor/listings/${encodeURIComponent(created.id)}/edit`, { replace: true });
        return;
      }
      if (editable) {
        onSaved(await marketplace().updateListing(listing.id, input));
      } else {
        await marketplace().newVersion(listing.id, input);
        onSaved(await marketplace().listing(listing.id));
      }
      setSaved(true);
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <section className="page editor">
      <PageHeader title={listing ? t('editor.edit_title', { title: listing.title }) : t('editor.new_title')}>
        {version && <StateBadge state={version.state} />}
      </PageHeader>
      {version?.review_comment && (
        <Notice tone="warning">
          <strong>{t('vendor.reviewer_comment')}:</strong> {version.review_comment}
        </Notice>
      )}
      {!editable && <Notice>{t('editor.new_version_note')}</Notice>}
      {saved && <Notice tone="success">{t('editor.saved')}</Notice>}
      <form onSubmit={(e) => void save(e)} noValidate>
        <ProblemAlert error={error} />
        <div className="two-col">
          <div>
            <SelectField label={t('editor.kind')} value={d.kind} onChange={(e) => set('kind', e.target.value as ListingKind)} disabled={!!listing} error={fields.kind}>
              {(['model', 'dataset', 'compute'] as const).map((k) => (
                <option key={k} value={k}>
                  {t(`kind.${k}`)}
                </option>
              ))}
            </SelectField>
            <TextField label={t('editor.title')} value={d.title} onChange={(e) => set('title', e.target.value)} error={fields.title} required />
            <TextField label={t('editor.summary')} value={d.summary} onChange={(e) => set('summary', e.target.value)} error={fields.summary} required />
            <TextField label={t('listing.license')} value={d.license} onChange={(e) => set('license', e.target.value)} error={fields.license} hint={t('editor.license_hint')} />
            <TextField label={t('listing.residency')} value={d.residency} onChange={(e) => set('residency', e.target.value)} error={fields.residency} hint={t('editor.residency_hint')} />
            <TextField label={t('listing.tags')} value={d.tags} onChange={(e) => set('tags', e.target.value)} error={fields.tags} hint={t('editor.tags_hint')} />
            {d.kind !== 'compute' && (
              <label className="check">
                <input type="checkbox" checked={d.gated} onChange={(e) => set('gated', e.target.checked)} />
                <span>{t('editor.gated')}</span>
              </label>
            )}
            {d.kind === 'compute' && (
              <fieldset>
                <legend>{t('editor.compute')}</legend>
                <TextField label={t('listing.gpu_model')} value={d.gpu_model} onChange={(e) => set('gpu_model', e.target.value)} error={fields['compute.gpu_model']} required />
                <TextField
                  label={t('listing.price_per_gpu_hour')}
                  inputMode="decimal"
                  value={d.price_per_gpu_hour}
                  onChange={(e) => set('price_per_gpu_hour', e.target.value)}
                  error={fields['compute.price_per_gpu_hour_micro']}
                  hint={t('editor.credits_hint')}
                />
              </fieldset>
            )}
          </div>
          <div className="editor__card">
            <TextAreaField label={t('editor.card')} value={d.card_markdown} onChange={(e) => set('card_markdown', e.target.value)} error={fields.card_markdown} rows={14} hint={t('editor.card_hint')} className="mono" />
            <h2 className="h3">{t('editor.preview')}</h2>
            <MarkdownPreview markdown={d.card_markdown} label={t('editor.preview')} />
          </div>
        </div>
        <fieldset>
          <legend>{t('listing.plans')}</legend>
          {d.plans.map((p, i) => (
            <div key={i} className="plan-row">
              <TextField label={t('editor.plan_name')} value={p.name} onChange={(e) => setPlan(i, { name: e.target.value })} error={fields[`plans.${i}.name`]} />
              <SelectField label={t('editor.plan_kind')} value={p.kind} onChange={(e) => setPlan(i, { kind: e.target.value as PlanKind })}>
                {(['free', 'one_time', 'subscription', 'per_gpu_hour'] as const).map((k) => (
                  <option key={k} value={k}>
                    {t(`plan_kind.${k}`)}
                  </option>
                ))}
              </SelectField>
              <TextField
                label={t('editor.plan_price')}
                inputMode="decimal"
                value={p.kind === 'free' ? '0' : p.price}
                disabled={p.kind === 'free'}
                onChange={(e) => setPlan(i, { price: e.target.value })}
                error={fields[`plans.${i}.price_micro`]}
              />
              <TextField label={t('editor.plan_description')} value={p.description} onChange={(e) => setPlan(i, { description: e.target.value })} />
              <button type="button" className="button button--quiet" onClick={() => set('plans', d.plans.filter((_, j) => j !== i))} aria-label={t('editor.remove_plan', { n: i + 1 })}>
                {t('common.remove')}
              </button>
            </div>
          ))}
          <button type="button" className="button" onClick={() => set('plans', [...d.plans, { name: '', kind: 'one_time', price: '', description: '' }])}>
            {t('editor.add_plan')}
          </button>
        </fieldset>
        <div className="actions">
          <button type="submit" className="button button--primary" disabled={busy}>
            {busy ? t('common.working') : listing ? (editable ? t('common.save') : t('editor.save_new_version')) : t('editor.create')}
          </button>
        </div>
      </form>
      {listing && version && editable && d.kind !== 'compute' && <Artifacts listingId={listing.id} version={version.version} initial={version.artifacts ?? []} />}
    </section>
  );
}

const LOCAL_HASH_LIMIT = 256 * 1024 * 1024;

async function sha256Hex(file: Blob): Promise<string | null> {
  if (!globalThis.crypto?.subtle || file.size > LOCAL_HASH_LIMIT) return null;
  const digest = await crypto.subtle.digest('SHA-256', await file.arrayBuffer());
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

function Artifacts({ listingId, version, initial }: { listingId: string; version: number; initial: Artifact[] }) {
  const { t } = useTranslation();
  const [artifacts, setArtifacts] = useState<Artifact[]>(initial);
  const [progress, setProgress] = useState<{ name: string; loaded: number; total: number } | null>(null);
  const [localHash, setLocalHash] = useState<Record<string, string>>({});
  const [error, setError] = useState<unknown>();
  const handle = useRef<UploadHandle | null>(null);
  const fileInput = useRef<HTMLInputElement>(null);
  useEffect(() => () => handle.current?.abort(), []);

  const upload = async (file: File) => {
    setError(undefined);
    setProgress({ name: file.name, loaded: 0, total: file.size });
    void sha256Hex(file).then((h) => h && setLocalHash((m) => ({ ...m, [file.name]: h })));
    const h = uploadArtifact(marketplace().artifactPath(listingId, version, file.name), file, (loaded, total) =>
      setProgress({ name: file.name, loaded, total }),
    );
    handle.current = h;
    try {
      const a = await h.promise;
      setArtifacts((list) => [...list.filter((x) => x.name !== a.name), { ...a, name: a.name ?? file.name }]);
    } catch (e) {
      if (!(e instanceof DOMException && e.name === 'AbortError')) setError(e);
    } finally {
      setProgress(null);
      handle.current = null;
      if (fileInput.current) fileInput.current.value = '';
    }
  };

  const pct = progress && progress.total ? Math.floor((progress.loaded * 100) / progress.total) : 0;
  return (
    <section aria-labelledby="artifacts-h">
      <h2 id="artifacts-h">{t('editor.artifacts')}</h2>
      <ProblemAlert error={error} />
      <div className="field">
        <label htmlFor="artifact-file">{t('editor.upload')}</label>
        <input id="artifact-file" ref={fileInput} type="file" disabled={!!progress} onChange={(e) => e.target.files?.[0] && void upload(e.target.files[0])} />
      </div>
      {progress && (
        <div className="upload-progress">
          <label htmlFor="upload-progress">{t('editor.uploading', { name: progress.name })}</label>
          <progress id="upload-progress" max={100} value={pct}>
            {pct}%
          </progress>
          <span aria-live="polite">
            {pct}% · {formatBytes(progress.loaded)} / {formatBytes(progress.total)}
          </span>
          <button type="button" className="button button--quiet" onClick={() => handle.current?.abort()}>
            {t('common.cancel')}
          </button>
        </div>
      )}
      {artifacts.length > 0 && (
        <div className="table-scroll">
          <table>
            <thead>
              <tr>
                <th scope="col">{t('editor.file')}</th>
                <th scope="col" className="num">{t('editor.size')}</th>
                <th scope="col">sha256</th>
              </tr>
            </thead>
            <tbody>
              {artifacts.map((a) => (
                <tr key={a.name}>
                  <td>{a.name}</td>
                  <td className="num">{formatBytes(a.size_bytes)}</td>
                  <td className="mono hash">
                    {a.sha256}
                    {localHash[a.name] && (
                      <span className={localHash[a.name] === a.sha256 ? 'ok' : 'bad'}>
                        {' '}
                        {localHash[a.name] === a.sha256 ? t('editor.hash_match') : t('editor.hash_mismatch')}
                      </span>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}
