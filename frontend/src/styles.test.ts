// styles.css is one file that several changes append to; a rule left open swallows every rule after it (it
// happened twice in merges, hiding the phone layout). This keeps its braces balanced and every top-level rule
// at the top level.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

describe('styles.css', () => {
  it('closes every rule before the next top-level one starts', () => {
    const css = readFileSync(join(__dirname, 'styles.css'), 'utf8').replace(/\/\*[\s\S]*?\*\//g, (c) => c.replace(/[^\n]/g, ' '));
    let depth = 0;
    const nested: string[] = [];
    css.split('\n').forEach((line, i) => {
      if (depth > 0 && /^[.a-z#[@:*]/.test(line)) nested.push(`line ${i + 1} starts "${line.trim()}" inside an open rule`);
      depth += (line.match(/\{/g) ?? []).length - (line.match(/\}/g) ?? []).length;
    });
    expect(nested).toEqual([]);
    expect(depth).toBe(0);
  });
});
