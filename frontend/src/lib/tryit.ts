// A model's or dataset's "try it" image, as listings carry it (`try_it`; `{}` in a patch withdraws it).

import type { TryIt, Version } from '../api/types';

/** tryItOf is a version's try-it image, if it has one. */
export function tryItOf(v: Version | undefined): TryIt | undefined {
  const x = v?.try_it;
  return x && 'image' in x && x.image ? (x as TryIt) : undefined;
}
