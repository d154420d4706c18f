// schema.d.ts is generated from the served OpenAPI document (sdk/openapi.json): this test regenerates it with the
// pinned openapi-typescript and fails when the checked-in file is stale. `go generate ./sdk/...` (or, after a
// change of the document only, `npm run gen:api`) rewrites it.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(__dirname, '..', '..');

describe('the generated API types', () => {
  it('match the served OpenAPI document (run `go generate ./sdk/...` when they do not)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'schema-'));
    try {
      const out = join(dir, 'schema.d.ts');
      execFileSync(process.execPath, [join(root, 'node_modules', 'openapi-typescript', 'bin', 'cli.js'), join(root, '..', 'sdk', 'openapi.json'), '-o', out], {
        stdio: 'pipe',
      });
      const fresh = readFileSync(out, 'utf8');
      const checked = readFileSync(join(root, 'src', 'api', 'schema.d.ts'), 'utf8');
      expect(checked === fresh, 'src/api/schema.d.ts is stale: run `go generate ./sdk/...` from the repository root').toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
