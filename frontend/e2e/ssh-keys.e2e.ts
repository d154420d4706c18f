// The SSH keys section of the Profile page against a real `tamarack serve` (demo seed): an SME adds a public
// key (a malformed one first, refused with its field message), sees it listed with its SHA256 fingerprint, and
// deletes it after confirming. Screenshots (test-results/screenshots) and axe on the page; CSP violations fail.

import { createHash, generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import en from '../src/locales/en.json';
import { axe, cspViolations, DEMO_PASSWORD, launchBrowser, openPage, screenshot, serious, startServer, type Server } from './harness';

let server: Server;
let browser: Browser;

beforeAll(async () => {
  server = await startServer({ args: ['--ssh-addr', '127.0.0.1:0'] });
  browser = await launchBrowser();
});
afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

/** An OpenSSH ed25519 public key line and its SHA256 fingerprint as ssh-keygen -l prints it. */
function ed25519Key(comment: string): { line: string; fingerprint: string } {
  const { publicKey } = generateKeyPairSync('ed25519');
  const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
  const str = (b: Buffer) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(b.length);
    return Buffer.concat([len, b]);
  };
  const blob = Buffer.concat([str(Buffer.from('ssh-ed25519')), str(raw)]);
  const fingerprint = 'SHA256:' + createHash('sha256').update(blob).digest('base64').replace(/=+$/, '');
  return { line: `ssh-ed25519 ${blob.toString('base64')} ${comment}`, fingerprint };
}

it('adds, lists and deletes an SSH key on the profile', async () => {
  const a = await openPage(browser, server.url);
  const p = a.page;
  try {
    await p.goto('/signin');
    await p.getByLabel(en.signup.email).fill('sme@tamarack.demo');
    await p.getByLabel(en.signup.password, { exact: true }).fill(DEMO_PASSWORD);
    await p.getByRole('button', { name: en.signin.submit, exact: true }).click();
    await p.getByRole('button', { name: en.header.sign_out }).waitFor();
    await p.goto('/profile');
    await p.getByRole('heading', { name: en.ssh_keys.title }).waitFor();
    await p.getByText(en.ssh_keys.none).waitFor();

    // A malformed key: refused, the message beside the field.
    await p.getByLabel(en.ssh_keys.public_key).fill('ssh-ed25519 not-a-key');
    await p.getByRole('button', { name: en.ssh_keys.add }).click();
    await p.getByText('not an OpenSSH public key', { exact: false }).waitFor();
    await screenshot(p, 'ssh-keys-invalid');

    const k = ed25519Key('laptop@example');
    await p.getByLabel(en.ssh_keys.public_key).fill(k.line);
    await p.getByRole('button', { name: en.ssh_keys.add }).click();
    const row = p.locator(`tr[data-ssh-key="${k.fingerprint}"]`);
    await row.waitFor();
    expect(await row.textContent()).toContain('laptop@example');
    expect(await row.textContent()).toContain(en.ssh_keys.never);
    await screenshot(p, 'ssh-keys-listed');
    expect(serious(await axe(p, 'ssh-keys-listed')), 'serious accessibility violations').toEqual([]);

    // Delete, after the question.
    await p.getByRole('button', { name: en.ssh_keys.delete_named.replace('{{name}}', 'laptop@example') }).click();
    await p.getByRole('button', { name: en.ssh_keys.delete, exact: true }).last().click();
    await row.waitFor({ state: 'detached' });
    await p.getByText(en.ssh_keys.none).waitFor();
    await screenshot(p, 'ssh-keys-empty');
    expect(cspViolations(a.problems)).toEqual([]);
  } finally {
    await a.context.close();
  }
}, 120_000);
