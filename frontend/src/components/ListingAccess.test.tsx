import { act, render, screen } from '@testing-library/react';
import { MemoryRouter } from 'react-router-dom';
import { beforeEach, describe, expect, it } from 'vitest';
import type { Listing, ListingViewer } from '../api/types';
import i18n, { setupI18n } from '../i18n';
import { AccessPanel, DownloadSnippets, LockBanner, pythonSnippet } from './ListingAccess';

setupI18n('en');

function listing(viewer: Partial<ListingViewer>, gated = true): Listing {
  return {
    id: 'lst_1', slug: 'notes', kind: 'dataset', status: 'published', vendor: { id: 'org_v', name: 'Aurora AI' },
    hub_repo: 'aurora-ai/notes', created_at: '2026-12-01T00:00:00Z', updated_at: '2026-12-01T00:00:00Z', rating: { average: 0, count: 0 },
    published_version: {
      id: 'ver_1', version: 1, state: 'published', card_html: '', title: 'Notes', summary: '', card_markdown: '', tags: [],
      license: { spdx: 'MIT' }, residency: 'CA', canadian_owned_ip: false, visibility: 'public', visible_to: [], gated,
      plans: [], artifacts: [{ id: 'art_1', name: 'notes.jsonl', size_bytes: 3, sha256: 'ab', content_type: 'application/jsonl', created_at: '2026-12-01T00:00:00Z', download_url: '/x' }], created_at: '2026-12-01T00:00:00Z',
      updated_at: '2026-12-01T00:00:00Z', jurisdiction: '', title_fr: '', summary_fr: '',
    },
    viewer: { entitled: false, can_download: false, can_rate: false, can_request_access: false, access_request: null, ...viewer },
  };
}

function show(node: React.ReactNode) {
  render(<MemoryRouter>{node}</MemoryRouter>);
}

beforeEach(async () => {
  await act(() => i18n.changeLanguage('en'));
});

describe('listing access', () => {
  it('locks a gated listing until downloads are allowed', () => {
    show(<LockBanner listing={listing({ can_request_access: true })} />);
    expect(screen.getByText('Access on request')).toBeInTheDocument();
  });
  it('shows no lock once the organisation may download, nor on an open listing', () => {
    show(
      <>
        <LockBanner listing={listing({ can_download: true, entitled: true })} />
        <LockBanner listing={listing({}, false)} />
      </>,
    );
    expect(screen.queryByText('Access on request')).toBeNull();
  });
  it('shows a denied request with the vendor’s note and offers to ask again', () => {
    show(
      <AccessPanel
        listing={listing({
          can_request_access: true,
          access_request: { id: 'acc_1', state: 'denied', note: 'Tell us about your ethics board.', created_at: '2026-12-01T10:00:00Z', decided_at: '2026-12-02T10:00:00Z' },
        })}
        onChange={() => undefined}
      />,
    );
    expect(screen.getByText('Denied')).toBeInTheDocument();
    expect(screen.getByText('Tell us about your ethics board.')).toBeInTheDocument();
    expect(screen.getByRole('heading', { name: 'Ask again' })).toBeInTheDocument();
    expect(screen.getByRole('button', { name: 'Send the request' })).toBeInTheDocument();
  });
  it('shows a pending request without a form', () => {
    show(
      <AccessPanel
        listing={listing({ access_request: { id: 'acc_1', state: 'pending', note: '', created_at: '2026-12-01T10:00:00Z', decided_at: null } })}
        onChange={() => undefined}
      />,
    );
    expect(screen.getByText('Pending')).toBeInTheDocument();
    expect(screen.queryByRole('button', { name: 'Send the request' })).toBeNull();
  });
  it('offers the download snippets only to those who may download', () => {
    show(<DownloadSnippets listing={listing({})} />);
    expect(screen.queryByLabelText('Tamarack command line')).toBeNull();
    show(<DownloadSnippets listing={listing({ can_download: true, entitled: true })} />);
    expect(screen.getByLabelText('Tamarack command line')).toHaveValue('tamarack listings download aurora-ai/notes');
    expect(screen.getByRole('button', { name: 'Copy the command' })).toBeInTheDocument();
    expect(screen.getByLabelText('Python (huggingface_hub)')).toHaveValue(pythonSnippet(window.location.origin, 'aurora-ai/notes', 'dataset'));
  });
  it('writes the huggingface_hub snippet for models and datasets', () => {
    expect(pythonSnippet('https://t.example', 'a/m', 'model')).toContain('print(snapshot_download("a/m"))');
    expect(pythonSnippet('https://t.example', 'a/d', 'dataset')).toContain('repo_type="dataset"');
    expect(pythonSnippet('https://t.example', 'a/d', 'dataset')).toContain('export HF_ENDPOINT=https://t.example');
  });
});
