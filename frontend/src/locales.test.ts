// Every string key the code uses exists in English and French, and both files hold the same keys.

import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import en from './locales/en.json';
import fr from './locales/fr.json';

function flatten(o: Record<string, unknown>, prefix = ''): string[] {
  return Object.entries(o).flatMap(([k, v]) => (typeof v === 'object' && v !== null ? flatten(v as Record<string, unknown>, `${prefix}${k}.`) : [`${prefix}${k}`]));
}

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f);
    if (statSync(p).isDirectory()) return sources(p);
    return /\.tsx?$/.test(f) && !/\.test\.tsx?$/.test(f) ? [p] : [];
  });
}

const enKeys = new Set(flatten(en));
const frKeys = new Set(flatten(fr));
const has = (keys: Set<string>, k: string) => keys.has(k) || keys.has(`${k}_one`) || keys.has(`${k}_other`);

describe('locales', () => {
  it('English and French have the same keys', () => {
    expect([...enKeys].filter((k) => !frKeys.has(k))).toEqual([]);
    expect([...frKeys].filter((k) => !enKeys.has(k))).toEqual([]);
  });

  it('every static t() key and nav label exists', () => {
    const root = join(__dirname);
    const used = new Set<string>();
    for (const file of sources(root)) {
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/\bt\(\s*['"]([a-z_]+\.[a-z_0-9.]+)['"]/g)) used.add(m[1]);
      for (const m of text.matchAll(/label: '([a-z_]+\.[a-z_0-9]+)'/g)) used.add(m[1]);
    }
    expect(used.size).toBeGreaterThan(100);
    expect([...used].filter((k) => !has(enKeys, k))).toEqual([]);
  });

  it('dynamic key families are complete', () => {
    const families: Record<string, string[]> = {
      kind: ['model', 'dataset', 'compute'],
      org_kind: ['sme', 'vendor', 'partner'],
      role: ['owner', 'admin', 'member'],
      facet: ['kind', 'tag', 'license', 'gpu_model', 'residency', 'vendor'],
      plan_kind: ['free', 'one_time', 'subscription', 'per_gpu_hour'],
      language: ['en', 'fr'],
      state: [
        'draft', 'submitted', 'approved', 'rejected', 'changes_requested', 'published', 'suspended', 'retired',
        'pending', 'fulfilled', 'cancelled', 'failed', 'denied',
        'requested', 'scheduled', 'provisioning', 'running', 'stopping', 'stopped', 'active', 'completed', 'posted', 'voided',
        // nodes, site agents, enrolment tokens
        'ready', 'draining', 'down', 'connected', 'unreachable', 'never_connected', 'revoked', 'usable', 'used', 'expired',
      ],
      'staff.decision': ['approve', 'reject', 'request_changes'],
      oidc_error: [
        'oidc_provider_not_found', 'oidc_provider_unavailable', 'oidc_state_invalid', 'oidc_denied', 'oidc_token_invalid',
        'oidc_email_unverified', 'oidc_domain_not_allowed', 'oidc_misconfigured', 'oidc_code_invalid', 'email_taken',
        'validation_failed', 'other',
      ],
      'staff.send': ['approve', 'reject', 'request_changes'],
      'staff.field': ['title', 'summary', 'license', 'residency'],
      'catalogue.sort': ['relevance', 'newest', 'price'],
      'sandbox.terminal': ['connecting', 'open', 'closed'],
      'sandbox.logs': ['connecting', 'open', 'closed'],
      'sandbox.progress': ['pulling', 'unpacking', 'starting'],
      stop_reason: ['user', 'expired', 'wallet_exhausted', 'access_revoked', 'staff', 'node_lost', 'image_not_allowed', 'image_invalid', 'image_unavailable'],
    };
    const missing: string[] = [];
    for (const [prefix, values] of Object.entries(families)) {
      const sep = prefix.includes('.') ? '_' : '.';
      for (const v of values) if (!has(enKeys, `${prefix}${sep}${v}`)) missing.push(`${prefix}${sep}${v}`);
    }
    for (const k of ['model', 'dataset', 'compute']) {
      for (const part of ['title', 'body']) if (!enKeys.has(`home.tile_${k}_${part}`)) missing.push(`home.tile_${k}_${part}`);
    }
    expect(missing).toEqual([]);
  });
});
