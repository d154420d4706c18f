import '@testing-library/jest-dom/vitest';
import { afterEach } from 'vitest';
import { cleanup, configure } from '@testing-library/react';

// Pages load lazily (React.lazy): on a busy two-core CI machine the first render of a page's chunk can take
// longer than Testing Library's default 1 s wait, which made findBy* fail at random. What a test waits for is
// unchanged; it may only wait longer.
configure({ asyncUtilTimeout: 10_000 });

afterEach(() => {
  cleanup();
  localStorage.clear();
});
