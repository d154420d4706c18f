// smoke-static: an interim server for the smoke journey while the Go server does not exist yet. It serves dist/
// with the same security headers and SPA fallback as frontend.go, and stubs a few identity endpoints with
// problem JSON. Replace its use by the real server (harness.startServer) once `tamarack serve` runs.

import { readFile, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { extname, join, normalize } from 'node:path';
import { FRONTEND_DIR } from './harness';

const DIST = join(FRONTEND_DIR, 'dist');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.json': 'application/json',
  '.png': 'image/png',
  '.woff2': 'font/woff2',
};

/** The same policy as frontend.go's setSecurityHeaders. */
function securityHeaders(host: string): Record<string, string> {
  return {
    'Content-Security-Policy':
      "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; " +
      `connect-src 'self' ws://${host} wss://${host}; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'`,
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'same-origin',
    'X-Frame-Options': 'DENY',
  };
}

export type Stub = (req: IncomingMessage, body: unknown) => { status: number; body?: unknown } | undefined;

function problem(status: number, code: string, title: string, extra: Record<string, unknown> = {}) {
  return { status, body: { type: `https://tamarack.dev/problems/${code}`, title, status, code, ...extra } };
}

/** The stubbed API of the smoke journey. */
export const smokeStubs: Stub = (req, body) => {
  const path = (req.url ?? '').split('?')[0];
  if (req.method === 'POST' && path === '/api/v1/identity/signup') {
    const b = (body ?? {}) as { email?: string; password?: string; organization?: { name?: string } };
    const fields = [];
    if (!b.email?.includes('@')) fields.push({ field: 'email', code: 'invalid', message: 'Enter a valid email address.' });
    if ((b.password ?? '').length < 12) fields.push({ field: 'password', code: 'too_short', message: 'Use at least 12 characters.' });
    if (!b.organization?.name) fields.push({ field: 'organization.name', code: 'required', message: 'Name your organisation.' });
    return problem(422, 'validation_failed', 'The request has invalid fields.', { detail: `${fields.length} invalid field(s)`, fields });
  }
  if (path === '/api/v1/identity/me') return problem(401, 'unauthorized', 'Sign in first: a valid bearer token is required.');
  if (path === '/api/v1/marketplace/listings') return { status: 200, body: { items: [], next_cursor: null, facets: {} } };
  return undefined;
};

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const text = Buffer.concat(chunks).toString();
  try {
    return text ? JSON.parse(text) : undefined;
  } catch {
    return undefined;
  }
}

async function handle(req: IncomingMessage, res: ServerResponse, stubs: Stub) {
  const path = decodeURIComponent((req.url ?? '/').split('?')[0]);
  if (path === '/healthz' || path === '/readyz') {
    res.writeHead(200, { 'Content-Type': 'text/plain' }).end('ok');
    return;
  }
  if (path === '/api' || path.startsWith('/api/')) {
    const answer = stubs(req, await readBody(req)) ?? problem(404, 'route_not_found', 'No such route.');
    const isProblem = answer.status >= 400;
    res.writeHead(answer.status, { 'Content-Type': isProblem ? 'application/problem+json' : 'application/json' });
    res.end(answer.body === undefined ? '' : JSON.stringify(answer.body));
    return;
  }
  const headers = securityHeaders(req.headers.host ?? '');
  const rel = normalize(path).replace(/^(\.\.[/\\])+/, '').replace(/^\/+/, '');
  if (rel && rel !== 'index.html') {
    const file = join(DIST, rel);
    if (file.startsWith(DIST) && (await stat(file).then((s) => s.isFile(), () => false))) {
      const cache = rel.startsWith('assets/') ? 'public, max-age=31536000, immutable' : 'public, max-age=300';
      res.writeHead(200, { ...headers, 'Content-Type': TYPES[extname(rel)] ?? 'application/octet-stream', 'Cache-Control': cache });
      res.end(await readFile(file));
      return;
    }
    if (rel.startsWith('assets/')) {
      res.writeHead(404, { ...headers, 'Content-Type': 'text/plain' }).end('not found\n');
      return;
    }
  }
  res.writeHead(200, { ...headers, 'Content-Type': TYPES['.html'], 'Cache-Control': 'no-cache' });
  res.end(await readFile(join(DIST, 'index.html')));
}

export async function startStaticServer(stubs: Stub = smokeStubs): Promise<{ url: string; stop: () => Promise<void> }> {
  try {
    await stat(join(DIST, 'index.html'));
  } catch {
    throw new Error('frontend/dist/index.html is missing: run `npm run build` first (the harness builds nothing)');
  }
  const server: Server = createServer((req, res) => {
    handle(req, res, stubs).catch((e: unknown) => {
      res.writeHead(500, { 'Content-Type': 'text/plain' }).end(String(e));
    });
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    stop: () => new Promise<void>((ok) => server.close(() => ok())),
  };
}
