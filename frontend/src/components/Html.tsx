// Rendering HTML that is not ours: the listing card HTML (sanitised by the server, sanitised again here) and the
// editor's live Markdown preview.

import DOMPurify from 'dompurify';
import { marked } from 'marked';
import { useMemo } from 'react';

export function sanitize(html: string): string {
  return DOMPurify.sanitize(html, { USE_PROFILES: { html: true }, FORBID_ATTR: ['style'], FORBID_TAGS: ['style'] });
}

export function SafeHtml({ html, className }: { html: string; className?: string }) {
  const clean = useMemo(() => sanitize(html), [html]);
  return <div className={className ?? 'prose'} dangerouslySetInnerHTML={{ __html: clean }} />;
}

export function renderMarkdown(md: string): string {
  return sanitize(marked.parse(md, { async: false, gfm: true }) as string);
}

export function MarkdownPreview({ markdown, label }: { markdown: string; label: string }) {
  const html = useMemo(() => renderMarkdown(markdown), [markdown]);
  return (
    <section className="preview" aria-label={label}>
      <div className="prose" dangerouslySetInnerHTML={{ __html: html }} />
    </section>
  );
}
