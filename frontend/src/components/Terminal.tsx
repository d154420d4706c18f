// The sandbox's interactive shell: xterm.js over a WebSocket. The canvas renderer is used because xterm's DOM
// renderer injects <style> elements, which the server's Content-Security-Policy (style-src 'self') forbids.

import { useEffect, useRef, useState } from 'react';
import { useTranslation } from 'react-i18next';
import { Terminal as XTerm } from '@xterm/xterm';
import { FitAddon } from '@xterm/addon-fit';
import { CanvasAddon } from '@xterm/addon-canvas';

/** leavesTerminal is the documented key that moves the focus out of the terminal (WCAG 2.1.2, no keyboard trap):
 * Ctrl+Shift+E. Every other key, Tab and Escape included, goes to the shell. */
export function leavesTerminal(ev: Pick<KeyboardEvent, 'type' | 'ctrlKey' | 'shiftKey' | 'altKey' | 'metaKey' | 'key'>): boolean {
  return ev.type === 'keydown' && ev.ctrlKey && ev.shiftKey && !ev.altKey && !ev.metaKey && ev.key.toLowerCase() === 'e';
}

/** terminalClosed is what a closed terminal shows: unavailable when the server closed it because the sandbox's
 * backend does not answer (1013 Try Again Later, reason "unavailable: …"), closed otherwise. */
export function terminalClosed(ev: Pick<CloseEvent, 'code' | 'reason'>): 'unavailable' | 'closed' {
  return ev.code === 1013 || ev.reason.startsWith('unavailable:') ? 'unavailable' : 'closed';
}

export function Terminal({ url, label }: { url: string; label: string }) {
  const { t } = useTranslation();
  const el = useRef<HTMLDivElement>(null);
  const after = useRef<HTMLParagraphElement>(null);
  const [status, setStatus] = useState<'connecting' | 'open' | 'closed' | 'unavailable'>('connecting');
  useEffect(() => {
    if (!el.current) return;
    // screenReaderMode keeps a DOM mirror of the rows for assistive technology (the canvas alone is opaque to it).
    const term = new XTerm({
      convertEol: true,
      cursorBlink: true,
      fontFamily: 'ui-monospace, Menlo, Consolas, monospace',
      fontSize: 14,
      screenReaderMode: true,
    });
    const fit = new FitAddon();
    term.loadAddon(fit);
    // Loaded before open(), the canvas addon installs its renderer as the terminal opens, so the DOM renderer
    // (and its <style> elements) is never created. Without a 2D canvas xterm falls back to the DOM renderer.
    term.loadAddon(new CanvasAddon());
    term.open(el.current);
    term.attachCustomKeyEventHandler((ev) => {
      if (!leavesTerminal(ev)) return true;
      ev.preventDefault();
      after.current?.focus();
      return false;
    });
    fit.fit();
    const ws = new WebSocket(url);
    ws.binaryType = 'arraybuffer';
    const enc = new TextEncoder();
    ws.onopen = () => {
      setStatus('open');
      ws.send(JSON.stringify({ type: 'resize', cols: term.cols, rows: term.rows }));
    };
    ws.onmessage = (ev) => term.write(typeof ev.data === 'string' ? ev.data : new Uint8Array(ev.data as ArrayBuffer));
    ws.onclose = (ev) => setStatus(terminalClosed(ev));
    const input = term.onData((d) => ws.readyState === WebSocket.OPEN && ws.send(enc.encode(d)));
    const resize = term.onResize(({ cols, rows }) => ws.readyState === WebSocket.OPEN && ws.send(JSON.stringify({ type: 'resize', cols, rows })));
    const onWin = () => fit.fit();
    window.addEventListener('resize', onWin);
    return () => {
      window.removeEventListener('resize', onWin);
      input.dispose();
      resize.dispose();
      ws.close();
      term.dispose();
    };
  }, [url]);
  return (
    <div>
      <p className="muted small" role="status">
        {t(`sandbox.terminal_${status}`)}
      </p>
      <p className="muted small" id="terminal-keys">
        {t('sandbox.terminal_escape_hint')}
      </p>
      <div ref={el} className="terminal" role="application" aria-label={label} aria-describedby="terminal-keys" />
      <p ref={after} className="terminal-after small" tabIndex={-1} data-testid="terminal-left">
        {t('sandbox.terminal_left')}
      </p>
    </div>
  );
}
