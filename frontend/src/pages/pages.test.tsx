// Unit tests of the pages' pure parts against the services' real shapes: the editor's form ↔ API conversion, the
// review diff rendering, and the problem alert's field list.

import { render, screen } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { ApiError } from '../api/problem';
import type { Listing } from '../api/types';
import { ProblemAlert } from '../components/ui';
import { setupI18n } from '../i18n';
import { fromListing, slugify, toInput } from './Editor';
import { diffValue } from './Staff';
import { chargeByModel, gpuHoursByDay } from './Wallet';

setupI18n('en');

const listing: Listing = {
  id: 'lst_1',
  slug: 'prairie-crops',
  kind: 'dataset',
  status: 'draft',
  rating: { average: 0, count: 0 },
  vendor: { id: 'org_v', name: 'Northern GPU Co.' },
  created_at: '2026-11-22T00:00:00Z',
  updated_at: '2026-11-22T00:00:00Z',
  pending_version: {
    id: 'ver_1',
    version: 1,
    state: 'changes_requested',
    comment: 'Add the licence.',
    title: 'Prairie crops',
    summary: 'Yields',
    card_markdown: '# Crops',
    card_html: '<h1>Crops</h1>',
    tags: ['agriculture'],
    license: { spdx: 'CC-BY-4.0' },
    residency: 'CA',
    canadian_owned_ip: false,
    visibility: 'public',
    visible_to: [],
    gated: false,
    dataset: { format: 'csv' },
    plans: [
      { id: 'pln_1', name: 'Free', kind: 'free', price_micro: 0 },
      { id: 'pln_2', name: 'Pro', kind: 'one_time', price_micro: 2_500_000 },
    ],
    artifacts: [],
    created_at: '2026-11-22T00:00:00Z',
    updated_at: '2026-11-22T00:00:00Z',
    jurisdiction: '',
    title_fr: '',
    summary_fr: '',
  },
};

describe('editor conversion', () => {
  it('round-trips a listing version through the form without losing plans, licence or kind details', () => {
    const { input, errors } = toInput(fromListing(listing));
    expect(errors).toEqual({});
    expect(input).toMatchObject({
      kind: 'dataset',
      slug: 'prairie-crops',
      title: 'Prairie crops',
      license: { spdx: 'CC-BY-4.0' },
      dataset: { format: 'csv' },
      tags: ['agriculture'],
      plans: [
        { id: 'pln_1', name: 'Free', kind: 'free', price_micro: 0 },
        { id: 'pln_2', name: 'Pro', kind: 'one_time', price_micro: 2_500_000 },
      ],
    });
    expect(input.model).toBeUndefined();
    expect(input.compute).toBeUndefined();
  });

  it('carries the French title and summary both ways, and empties them to remove them', () => {
    const fr = { ...listing, pending_version: { ...listing.pending_version!, title_fr: 'Cultures des Prairies', summary_fr: 'Rendements' } };
    const d = fromListing(fr);
    expect([d.title_fr, d.summary_fr]).toEqual(['Cultures des Prairies', 'Rendements']);
    expect(toInput(d).input).toMatchObject({ title: 'Prairie crops', title_fr: 'Cultures des Prairies', summary_fr: 'Rendements' });
    expect(toInput({ ...d, title_fr: '' }).input.title_fr).toBe('');
  });

  it('keys bad prices like the server (plans[i].price_micro) and needs a link for a custom licence', () => {
    const d = fromListing(listing);
    d.plans[1].price = '2.5.0';
    d.license = 'custom';
    d.license_url = 'https://example.ca/terms';
    const { input, errors } = toInput(d);
    expect(Object.keys(errors)).toEqual(['plans[1].price_micro']);
    expect(input.license).toEqual({ spdx: 'custom', url: 'https://example.ca/terms' });
  });

  it("sends a model's try-it image with its command (one argument per line) and ports, and withdraws it with {} once emptied", () => {
    const d = fromListing(listing);
    d.try_image = ' registry.example.com/aurora/maple@sha256:' + 'ab'.repeat(32) + ' ';
    d.try_command = '/usr/bin/serve\n--port\n\n8080';
    d.try_ports = '8080, 9090';
    const { input, errors } = toInput(d);
    expect(errors).toEqual({});
    expect(input.try_it).toEqual({
      image: 'registry.example.com/aurora/maple@sha256:' + 'ab'.repeat(32),
      command: ['/usr/bin/serve', '--port', '8080'],
      ports: [8080, 9090],
    });
    // Round trip through a version that has it.
    const withIt = { ...listing, pending_version: { ...listing.pending_version!, try_it: input.try_it } };
    const back = fromListing(withIt);
    expect(back.try_command).toBe('/usr/bin/serve\n--port\n8080');
    expect(toInput(back, true).input.try_it).toEqual(input.try_it);
    // Emptied: withdrawn only where the version had one; never sent for compute listings.
    const emptied = { ...back, try_image: '', try_command: '', try_ports: '' };
    expect(toInput(emptied, true).input.try_it).toEqual({});
    expect(toInput(emptied, false).input.try_it).toBeUndefined();
    expect(toInput({ ...back, kind: 'compute' }, true).input.try_it).toBeUndefined();
  });

  it('keys a bad try-it port like the server (try_it.ports[i])', () => {
    const d = { ...fromListing(listing), try_image: 'r.example.com/x@sha256:' + '0'.repeat(64), try_ports: '8080, http' };
    expect(Object.keys(toInput(d).errors)).toEqual(['try_it.ports[1]']);
  });

  it('proposes a slug from a title', () => {
    expect(slugify('Données météo — Québec 2025!')).toBe('donnees-meteo-quebec-2025');
  });
});

describe('review diff values', () => {
  it('renders strings, tag lists, plans, objects and booleans readably', () => {
    expect(diffValue(null)).toBe('');
    expect(diffValue('CA')).toBe('CA');
    expect(diffValue(['a', 'b'])).toBe('a, b');
    expect(diffValue([{ name: 'Pro', kind: 'one_time', price_micro: 2_500_000 }])).toBe('Pro (one_time, 2.50)');
    expect(diffValue({ spdx: 'MIT', url: '' })).toBe('spdx: MIT');
    expect(diffValue({ format: 'csv', rows: 0, personal_data: false })).toBe('format: csv');
    expect(diffValue(true)).toBe('Yes');
    expect(diffValue({ image: 'r.example.com/m@sha256:ab', ports: [8080] })).toBe('image: r.example.com/m@sha256:ab, ports: [8080]');
  });
});

describe('usage charts', () => {
  const rows = [
    { day: '2026-11-21', gpu_model: 'h100-80gb', millis: 1_800_000, charge_micro: 1_250_000, cofunded_micro: 0, shortfall_micro: 0, sandbox_id: 'sb-1' },
    { day: '2026-11-21', gpu_model: 'h100-80gb', millis: 1_800_000, charge_micro: 1_250_000, cofunded_micro: 0, shortfall_micro: 0, sandbox_id: 'sb-1' },
    { day: '2026-11-22', gpu_model: 'l4-24gb', millis: 3_600_000, charge_micro: 500_000, cofunded_micro: 0, shortfall_micro: 0, sandbox_id: 'sb-2' },
  ];
  it('pivots GPU-hours by day and sums charges by model in micro-credits', () => {
    expect(gpuHoursByDay(rows).data).toEqual([
      { day: '2026-11-21', 'h100-80gb': 1 },
      { day: '2026-11-22', 'l4-24gb': 1 },
    ]);
    expect(chargeByModel(rows)).toEqual([
      { gpu_model: 'h100-80gb', micro: 2_500_000n, seconds: 3600 },
      { gpu_model: 'l4-24gb', micro: 500_000n, seconds: 3600 },
    ]);
  });
});

describe('problem alert', () => {
  const err = new ApiError({
    type: 'about:blank',
    title: 'The request has invalid fields.',
    status: 422,
    code: 'validation_failed',
    fields: [
      { field: 'title', code: 'required', message: 'is required' },
      { field: 'visibility', code: 'oneof', message: 'must be one of: public, restricted' },
    ],
  });
  it('lists only the field messages no form field shows', () => {
    render(<ProblemAlert error={err} listFields={(f) => f !== 'title'} />);
    const alert = screen.getByRole('alert');
    expect(alert).toHaveTextContent('The request has invalid fields.');
    expect(alert).toHaveTextContent('visibility: must be one of: public, restricted');
    expect(alert).not.toHaveTextContent('is required');
  });
});
