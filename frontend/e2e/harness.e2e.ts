// The harness's own lifecycle: start a server command with {port} and {data} filled in, wait for /readyz, and
// kill its whole process group at the end. A stand-in server (node) replaces `tamarack serve` here.

import { existsSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { startServer } from './harness';
import { totpAt } from './totp';

const FAKE = `node -e "const fs=require('fs');fs.writeFileSync('{data}/started','');require('http').createServer((q,s)=>{s.writeHead(q.url==='/readyz'?200:404);s.end('ok')}).listen({port},'127.0.0.1')"`;

describe('harness', () => {
  const saved = process.env.TAMARACK_E2E_SERVER_CMD;
  afterEach(() => {
    if (saved === undefined) delete process.env.TAMARACK_E2E_SERVER_CMD;
    else process.env.TAMARACK_E2E_SERVER_CMD = saved;
  });

  it('starts the configured command, waits for /readyz and stops it', async () => {
    delete process.env.TAMARACK_E2E_URL;
    process.env.TAMARACK_E2E_SERVER_CMD = FAKE;
    const s = await startServer();
    const res = await fetch(`${s.url}/readyz`);
    expect(res.status).toBe(200);
    await s.stop();
    await expect(fetch(`${s.url}/readyz`)).rejects.toThrow();
  });

  it('reports a server that exits before it is ready, with its output', async () => {
    delete process.env.TAMARACK_E2E_URL;
    process.env.TAMARACK_E2E_SERVER_CMD = 'echo "no such command: serve" >&2; test -d {data} && exit 3';
    await expect(startServer()).rejects.toThrow(/exit 3[\s\S]*no such command: serve/);
  });

  it('removes the data directory it made', async () => {
    delete process.env.TAMARACK_E2E_URL;
    process.env.TAMARACK_E2E_SERVER_CMD = `${FAKE.slice(0, -1)};console.log('{data}')"`;
    const s = await startServer();
    const dataDir = s.output().trim().split('\n').pop()!;
    expect(existsSync(`${dataDir}/started`)).toBe(true);
    await s.stop();
    expect(existsSync(dataDir)).toBe(false);
  });
});

describe('totp', () => {
  it('computes RFC 6238 codes (the RFC test vector, SHA-1, truncated to 6 digits)', () => {
    // Secret "12345678901234567890" in base32; at T = 59 s the 8-digit code is 94287082.
    const secret = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ';
    expect(totpAt(secret, Math.floor(59 / 30), 8)).toBe('94287082');
    expect(totpAt(secret, Math.floor(1111111109 / 30), 8)).toBe('07081804');
    expect(totpAt(secret, Math.floor(59 / 30))).toBe('287082');
  });
});
