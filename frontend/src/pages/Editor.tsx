// The vendor's listing editor: one form for the three kinds (compute adds GPU model and price per GPU-hour), a live
// Markdown preview of the card, plans with prices, and artifact uploads with progress and sha256.

import { useEffect, useRef, useState, type FormEvent } from 'react';
import { useTranslation } from 'react-i18next';
import { useNavigate, useParams } from 'react-router-dom';
import { marketplace, testbed } from '../api/endpoints';
import { isApiError } from '../api/problem';
import { uploadArtifact, type UploadHandle } from '../api/upload';
import { formatMicro, parseCredits, toMicro } from '../api/money';
import type { Artifact, ContentPatch, Listing, ListingInput, ListingKind, PlanInput, PlanKind, TryIt, Version } from '../api/types';
import { MarkdownPreview } from '../components/Html';
import { AsyncBlock, DataTable, Notice, PageHeader, ProblemAlert, SelectField, StateBadge, TextAreaField, TextField } from '../components/ui';
import { formatBytes } from '../lib/format';
import { useAsync, useDocumentTitle } from '../lib/hooks';
import { tryItOf } from '../lib/tryit';
import i18n from '../i18n';

interface PlanDraft {
  id?: string;
  name: string;
  kind: PlanKind;
  price: string;
}

interface Draft {
  kind: ListingKind;
  slug: string;
  title: string;
  summary: string;
  title_fr: string;
  summary_fr: string;
  license: string;
  license_url: string;
  residency: string;
  tags: string;
  gated: boolean;
  card_markdown: string;
  // model
  framework: string;
  task: string;
  // dataset
  format: string;
  // model and dataset: the "try it" image, its command (one argument per line) and ports (comma-separated)
  try_image: string;
  try_command: string;
  try_ports: string;
  // compute
  pool_id: string;
  gpu_model: string;
  region: string;
  devices_per_node: string;
  min_duration_minutes: string;
  max_duration_minutes: string;
  plans: PlanDraft[];
}

export const GPU_MODELS = ['h100-80gb', 'h200-141gb', 'a100-80gb', 'a100-40gb', 'l40s-48gb', 'l4-24gb', 'rtx6000ada-48gb', 'mi300x-192gb'];

const EMPTY: Draft = {
  kind: 'dataset',
  slug: '',
  title: '',
  summary: '',
  title_fr: '',
  summary_fr: '',
  license: 'CC-BY-4.0',
  license_url: '',
  residency: 'CA',
  tags: '',
  gated: false,
  card_markdown: '',
  framework: '',
  task: '',
  format: '',
  try_image: '',
  try_command: '',
  try_ports: '',
  pool_id: '',
  gpu_model: 'h100-80gb',
  region: '',
  devices_per_node: '8',
  min_duration_minutes: '15',
  max_duration_minutes: '1440',
  plans: [{ name: 'Free', kind: 'free', price: '0' }],
};

function microText(micro: number | undefined): string {
  return micro === undefined ? '' : formatMicro(toMicro(micro), 'en').replace(/,/g, '');
}

/** slugify proposes a slug from a title: lowercase ASCII letters, digits and '-'. */
export function slugify(title: string): string {
  return title
    .normalize('NFD')
    .replace(/[\u0300-\u036f]/g, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 64)
    .replace(/-+$/g, '');
}

/** The version a vendor edits: the pending one (draft, changes requested, submitted), else the published one. */
export function currentVersion(l: Listing): Version | undefined {
  return l.pending_version ?? l.published_version ?? undefined;
}

export function fromListing(l: Listing): Draft {
  const v = currentVersion(l);
  if (!v) return { ...EMPTY, kind: l.kind, slug: l.slug };
  return {
    ...EMPTY,
    kind: l.kind,
    slug: l.slug,
    title: v.title,
    summary: v.summary,
    title_fr: v.title_fr ?? '',
    summary_fr: v.summary_fr ?? '',
    license: v.license?.spdx ?? '',
    license_url: v.license?.url ?? '',
    residency: v.residency,
    tags: (v.tags ?? []).join(', '),
    gated: v.gated,
    card_markdown: v.card_markdown ?? '',
    framework: v.model?.framework ?? '',
    task: v.model?.task ?? '',
    format: v.dataset?.format ?? '',
    try_image: tryItOf(v)?.image ?? '',
    try_command: (tryItOf(v)?.command ?? []).join('\n'),
    try_ports: (tryItOf(v)?.ports ?? []).join(', '),
    pool_id: v.compute?.pool_id ?? '',
    gpu_model: v.compute?.gpu_model ?? EMPTY.gpu_model,
    region: v.compute?.region ?? '',
    devices_per_node: String(v.compute?.devices_per_node ?? EMPTY.devices_per_node),
    min_duration_minutes: String(v.compute?.min_duration_minutes ?? EMPTY.min_duration_minutes),
    max_duration_minutes: String(v.compute?.max_duration_minutes ?? EMPTY.max_duration_minutes),
    plans: (v.plans ?? []).map((p) => ({ id: p.id, name: p.name, kind: p.kind, price: microText(p.price_micro) })),
  };
}

/** toTryIt reads the try-it fields: undefined when they are empty; ports that are not numbers are keyed as the server keys them. */
function toTryIt(d: Draft, errors: Record<string, string>): TryIt | undefined {
  const image = d.try_image.trim();
  const command = d.try_command.split('\n').map((a) => a.trim()).filter(Boolean);
  const portText = d.try_ports.split(',').map((p) => p.trim()).filter(Boolean);
  if (!image && command.length === 0 && portText.length === 0) return undefined;
  const ports = portText.map((p, i) => {
    const n = /^\d+$/.test(p) ? Number(p) : NaN;
    if (!Number.isInteger(n) || n < 1 || n > 65535) errors[`try_it.ports[${i}]`] = i18n.t('editor.bad_port');
    return n;
  });
  return { image, ...(command.length ? { command } : {}), ...(ports.length ? { ports } : {}) };
}

/**
 * toInput converts the form to the API's input; amounts typed in credits become integer micro-credits. hadTryIt
 * says the version being edited offers a try-it image: emptied fields then withdraw it ({}).
 */
export function toInput(d: Draft, hadTryIt = false): { input: ListingInput; errors: Record<string, string> } {
  const errors: Record<string, string> = {};
  const plans: PlanInput[] = d.plans.map((p, i) => {
    const micro = p.kind === 'free' ? 0n : parseCredits(p.price);
    if (micro === null || micro < 0n) errors[`plans[${i}].price_micro`] = i18n.t('editor.bad_amount');
    return { ...(p.id ? { id: p.id } : {}), name: p.name, kind: p.kind, price_micro: Number(micro ?? 0n) };
  });
  const input: ListingInput = {
    kind: d.kind,
    slug: d.slug || slugify(d.title),
    title: d.title,
    summary: d.summary,
    title_fr: d.title_fr,
    summary_fr: d.summary_fr,
    card_markdown: d.card_markdown,
    tags: d.tags
      .split(',')
      .map((s) => s.trim().toLowerCase())
      .filter(Boolean),
    license: d.license.toLowerCase() === 'custom' ? { spdx: 'custom', url: d.license_url } : { spdx: d.license },
    residency: d.residency,
    canadian_owned_ip: false,
    visibility: 'public',
    visible_to: [],
    gated: d.kind === 'compute' ? false : d.gated,
    plans,
  };
  if (d.kind === 'model') input.model = { framework: d.framework, task: d.task };
  if (d.kind === 'dataset') input.dataset = { format: d.format };
  if (d.kind !== 'compute') {
    const tryIt = toTryIt(d, errors);
    if (tryIt) input.try_it = tryIt;
    // An empty object removes the try-it image (the API's convention), which the schema's type cannot say.
    else if (hadTryIt) input.try_it = {} as NonNullable<ListingInput['try_it']>;
  }
  if (d.kind === 'compute') {
    input.compute = {
      pool_id: d.pool_id,
      gpu_model: d.gpu_model,
      vram_gb: 0,
      region: d.region,
      devices_per_node: Number(d.devices_per_node) || 0,
      min_duration_minutes: Number(d.min_duration_minutes) || 0,
      max_duration_minutes: Number(d.max_duration_minutes) || 0,
    };
  }
  return { input, errors };
}

/** The PATCH body: the content without the kind and slug, which never change. */
function toPatch(input: ListingInput): ContentPatch {
  const { kind: _k, slug: _s, ...rest } = input;
  void _k;
  void _s;
  return rest;
}

export default function Editor() {
  const { id } = useParams();
  const loaded = useAsync(() => (id ? marketplace().listing(id) : Promise.resolve(null)), [id]);
  return (
    <AsyncBlock loading={loaded.loading} error={loaded.error} onRetry={loaded.reload}>
      <EditorForm key={id ?? 'new'} listing={loaded.data ?? null} onSaved={(l) => loaded.setData(l)} />
    </AsyncBlock>
  );
}

function EditorForm({ listing, onSaved }: { listing: Listing | null; onSaved: (l: Listing) => void }) {
  const { t } = useTranslation();
  const navigate = useNavigate();
  const [d, setD] = useState<Draft>(listing ? fromListing(listing) : EMPTY);
  const [savedDraft, setSavedDraft] = useState<Draft>(d);
  const dirty = JSON.stringify(d) !== JSON.stringify(savedDraft);
  const [error, setError] = useState<unknown>();
  const [localErrors, setLocalErrors] = useState<Record<string, string>>({});
  const [saved, setSaved] = useState<'saved' | 'submitted' | null>(null);
  const [busy, setBusy] = useState(false);
  const pools = useAsync(() => (d.kind === 'compute' ? testbed().pools() : Promise.resolve(null)), [d.kind]);
  const version = listing ? currentVersion(listing) : undefined;
  const title = listing ? t('editor.edit_title', { title: version?.title ?? listing.slug }) : t('editor.new_title');
  useDocumentTitle(title);
  const editable = !listing || !version || version.state === 'draft' || version.state === 'changes_requested';
  const fields = { ...(isApiError(error) ? error.fieldErrors() : {}), ...localErrors };
  const set = <K extends keyof Draft>(k: K, v: Draft[K]) => setD((prev) => ({ ...prev, [k]: v }));
  const setPlan = (i: number, p: Partial<PlanDraft>) => set('plans', d.plans.map((x, j) => (j === i ? { ...x, ...p } : x)));
  const planKinds: PlanKind[] = d.kind === 'compute' ? ['per_gpu_hour'] : ['free', 'one_time', 'subscription'];

  const save = async (e: FormEvent) => {
    e.preventDefault();
    setError(undefined);
    setSaved(null);
    const { input, errors } = toInput(d, !!tryItOf(version));
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
        onSaved(await marketplace().updateListing(listing.id, toPatch(input)));
      } else {
        onSaved(await marketplace().newVersion(listing.id, toPatch(input)));
      }
      setSavedDraft(d);
      setSaved('saved');
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  const submit = async () => {
    if (!listing) return;
    setError(undefined);
    setSaved(null);
    const { input, errors } = toInput(d, !!tryItOf(version));
    setLocalErrors(errors);
    if (Object.keys(errors).length) return;
    setBusy(true);
    try {
      // What is on the screen is what gets reviewed: unsaved changes are saved first.
      if (dirty) onSaved(await marketplace().updateListing(listing.id, toPatch(input)));
      onSaved(await marketplace().submit(listing.id));
      setSaved('submitted');
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <section className="page editor">
      <PageHeader title={title}>{version && <StateBadge state={version.state} />}</PageHeader>
      {version?.comment && version.state !== 'published' && (
        <Notice tone="warning">
          <strong>{t('vendor.reviewer_comment')}:</strong> <span className="review-comment">{version.comment}</span>
        </Notice>
      )}
      {!editable && <Notice>{version?.state === 'submitted' ? t('editor.under_review') : t('editor.new_version_note')}</Notice>}
      {saved && <Notice tone="success">{saved === 'submitted' ? t('editor.submitted') : t('editor.saved')}</Notice>}
      <form onSubmit={(e) => void save(e)} noValidate>
        <ProblemAlert error={error} listFields={(f) => !SHOWN_FIELDS.test(f)} />
        <div className="two-col">
          <div>
            <SelectField label={t('editor.kind')} value={d.kind} onChange={(e) => {
              const kind = e.target.value as ListingKind;
              setD((prev) => ({ ...prev, kind, plans: kind === 'compute' ? [{ name: 'Per GPU-hour', kind: 'per_gpu_hour', price: '' }] : prev.plans.filter((p) => p.kind !== 'per_gpu_hour') }));
            }} disabled={!!listing} error={fields.kind}>
              {(['model', 'dataset', 'compute'] as const).map((k) => (
                <option key={k} value={k}>
                  {t(`kind.${k}`)}
                </option>
              ))}
            </SelectField>
            <TextField label={t('editor.title')} value={d.title} onChange={(e) => set('title', e.target.value)} error={fields.title} required />
            {!listing && (
              <TextField label={t('editor.slug')} value={d.slug} placeholder={slugify(d.title)} onChange={(e) => set('slug', e.target.value)} error={fields.slug} hint={t('editor.slug_hint')} />
            )}
            <TextField label={t('editor.summary')} value={d.summary} onChange={(e) => set('summary', e.target.value)} error={fields.summary} required />
            <TextField label={t('editor.title_fr')} lang="fr" value={d.title_fr} onChange={(e) => set('title_fr', e.target.value)} error={fields.title_fr} hint={t('editor.french_hint')} />
            <TextField label={t('editor.summary_fr')} lang="fr" value={d.summary_fr} onChange={(e) => set('summary_fr', e.target.value)} error={fields.summary_fr} />
            <TextField label={t('listing.license')} value={d.license} onChange={(e) => set('license', e.target.value)} error={fields['license.spdx']} hint={t('editor.license_hint')} />
            {d.license.toLowerCase() === 'custom' && (
              <TextField label={t('editor.license_url')} type="url" value={d.license_url} onChange={(e) => set('license_url', e.target.value)} error={fields['license.url']} />
            )}
            <TextField label={t('listing.residency')} value={d.residency} onChange={(e) => set('residency', e.target.value)} error={fields.residency} hint={t('editor.residency_hint')} />
            <TextField label={t('listing.tags')} value={d.tags} onChange={(e) => set('tags', e.target.value)} error={fields.tags ?? fields['tags[0]']} hint={t('editor.tags_hint')} />
            {d.kind === 'model' && (
              <fieldset>
                <legend>{t('kind.model')}</legend>
                <TextField label={t('editor.framework')} value={d.framework} onChange={(e) => set('framework', e.target.value)} error={fields['model.framework']} required />
                <TextField label={t('editor.task')} value={d.task} onChange={(e) => set('task', e.target.value)} error={fields['model.task']} required />
              </fieldset>
            )}
            {d.kind === 'dataset' && (
              <fieldset>
                <legend>{t('kind.dataset')}</legend>
                <TextField label={t('editor.format')} value={d.format} onChange={(e) => set('format', e.target.value)} error={fields['dataset.format']} hint={t('editor.format_hint')} required />
              </fieldset>
            )}
            {d.kind !== 'compute' && (
              <label className="check">
                <input type="checkbox" checked={d.gated} onChange={(e) => set('gated', e.target.checked)} />
                <span>{t('editor.gated')}</span>
              </label>
            )}
            {d.kind !== 'compute' && (
              <fieldset>
                <legend>{t('editor.try_it')}</legend>
                <p className="muted small">{t('editor.try_it_intro')}</p>
                <TextField
                  label={t('editor.try_image')}
                  value={d.try_image}
                  onChange={(e) => set('try_image', e.target.value)}
                  error={fields['try_it.image']}
                  hint={t('editor.try_image_hint')}
                  placeholder="registry.example.com/team/model-server@sha256:…"
                  className="mono"
                  spellCheck={false}
                />
                <TextAreaField
                  label={t('editor.try_command')}
                  value={d.try_command}
                  onChange={(e) => set('try_command', e.target.value)}
                  error={firstField(fields, /^try_it\.command(\[\d+\])?$/)}
                  hint={t('editor.try_command_hint')}
                  rows={3}
                  className="mono"
                />
                <TextField
                  label={t('editor.try_ports')}
                  value={d.try_ports}
                  onChange={(e) => set('try_ports', e.target.value)}
                  error={firstField(fields, /^try_it\.ports(\[\d+\])?$/)}
                  hint={t('editor.try_ports_hint')}
                  inputMode="numeric"
                />
              </fieldset>
            )}
            {d.kind === 'compute' && (
              <fieldset>
                <legend>{t('editor.compute')}</legend>
                <SelectField label={t('editor.pool')} value={d.pool_id} onChange={(e) => {
                  const p = pools.data?.items.find((x) => x.id === e.target.value);
                  setD((prev) => ({ ...prev, pool_id: e.target.value, region: p?.region ?? prev.region, gpu_model: p?.gpus[0]?.gpu_model ?? prev.gpu_model }));
                }} error={fields['compute.pool_id']} required>
                  <option value="">{t('editor.choose_pool')}</option>
                  {(pools.data?.items ?? []).map((p) => (
                    <option key={p.id} value={p.id}>
                      {p.name}
                    </option>
                  ))}
                </SelectField>
                <SelectField label={t('listing.gpu_model')} value={d.gpu_model} onChange={(e) => set('gpu_model', e.target.value)} error={fields['compute.gpu_model']}>
                  {GPU_MODELS.map((g) => (
                    <option key={g} value={g}>
                      {g}
                    </option>
                  ))}
                </SelectField>
                <TextField label={t('vendor.region')} value={d.region} onChange={(e) => set('region', e.target.value)} error={fields['compute.region']} required />
                <TextField label={t('editor.devices_per_node')} type="number" min={1} value={d.devices_per_node} onChange={(e) => set('devices_per_node', e.target.value)} error={fields['compute.devices_per_node']} />
                <TextField label={t('editor.min_minutes')} type="number" min={1} value={d.min_duration_minutes} onChange={(e) => set('min_duration_minutes', e.target.value)} error={fields['compute.min_duration_minutes']} />
                <TextField label={t('editor.max_minutes')} type="number" min={1} value={d.max_duration_minutes} onChange={(e) => set('max_duration_minutes', e.target.value)} error={fields['compute.max_duration_minutes']} />
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
          {fields.plans && <p className="field__error">{fields.plans}</p>}
          {d.plans.map((p, i) => (
            <div key={i} className="plan-row">
              <TextField label={t('editor.plan_name')} value={p.name} onChange={(e) => setPlan(i, { name: e.target.value })} error={fields[`plans[${i}].name`]} />
              <SelectField label={t('editor.plan_kind')} value={p.kind} onChange={(e) => setPlan(i, { kind: e.target.value as PlanKind })} error={fields[`plans[${i}].kind`]}>
                {planKinds.map((k) => (
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
                error={fields[`plans[${i}].price_micro`]}
                hint={t('editor.credits_hint')}
              />
              <button type="button" className="button button--quiet" onClick={() => set('plans', d.plans.filter((_, j) => j !== i))} aria-label={t('editor.remove_plan', { n: i + 1 })}>
                {t('common.remove')}
              </button>
            </div>
          ))}
          <button type="button" className="button" onClick={() => set('plans', [...d.plans, { name: '', kind: planKinds[planKinds.length > 1 ? 1 : 0], price: '' }])}>
            {t('editor.add_plan')}
          </button>
        </fieldset>
        <div className="actions">
          <button type="submit" className="button button--primary" disabled={busy || (!!listing && version?.state === 'submitted')}>
            {busy ? t('common.working') : listing ? (editable ? t('common.save') : t('editor.save_new_version')) : t('editor.create')}
          </button>
          {listing && editable && version && (
            <button type="button" className="button" disabled={busy} onClick={() => void submit()}>
              {t('vendor.submit')}
            </button>
          )}
        </div>
      </form>
      {listing && version && editable && d.kind !== 'compute' && (
        <Artifacts key={version.id} listingId={listing.id} version={version.version} initial={version.artifacts ?? []} />
      )}
    </section>
  );
}

/** firstField is the message of the first field error whose name matches (a list's items share one input). */
function firstField(fields: Record<string, string>, re: RegExp): string | undefined {
  const k = Object.keys(fields).find((f) => re.test(f));
  return k ? fields[k] : undefined;
}

// Fields the form shows next to an input; the problem alert lists the others.
const SHOWN_FIELDS = /^(kind|slug|title|summary|title_fr|summary_fr|card_markdown|residency|tags(\[\d+\])?|license\.(spdx|url)|model\.(framework|task)|dataset\.format|try_it\.(image|command(\[\d+\])?|ports(\[\d+\])?)|compute\.(pool_id|gpu_model|region|devices_per_node|min_duration_minutes|max_duration_minutes)|plans|plans\[\d+\]\.(name|kind|price_micro))$/;

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
    // Hash locally first (files up to 256 MiB): the server then checks the bytes it received against it.
    const local = await sha256Hex(file).catch(() => null);
    if (local) setLocalHash((m) => ({ ...m, [file.name]: local }));
    const h = uploadArtifact(
      marketplace().artifactPath(listingId, version, file.name),
      file,
      (loaded, total) => setProgress({ name: file.name, loaded, total }),
      undefined,
      0,
      local ?? undefined,
    );
    handle.current = h;
    try {
      const a = await h.promise;
      setArtifacts((list) => [...list.filter((x) => x.name !== a.name), a]);
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
        <DataTable columns={[t('editor.file'), { label: t('editor.size'), num: true }, t('editor.sha256')]}>
          {artifacts.map((a) => (
            <tr key={a.name} data-artifact={a.name}>
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
        </DataTable>
      )}
    </section>
  );
}
