// Artifact upload with progress. fetch() cannot report upload progress, so this one call uses XMLHttpRequest; it
// still speaks the same problem format and bearer token as the client.

import { api, type ApiClient } from './client';
import { ApiError, networkProblem, type Problem } from './problem';
import type { Artifact } from './types';

export interface UploadHandle {
  promise: Promise<Artifact>;
  abort: () => void;
}

export function uploadArtifact(
  url: string,
  file: Blob,
  onProgress: (loaded: number, total: number) => void,
  client: ApiClient = api,
  attempt = 0,
  /** The file's sha256 in hex, when known: the server refuses the upload if the bytes it got differ. */
  sha256?: string,
): UploadHandle {
  const xhr = new XMLHttpRequest();
  let inner: UploadHandle | null = null;
  const promise = new Promise<Artifact>((resolve, reject) => {
    xhr.open('PUT', url);
    const token = client.tokens.accessToken;
    if (token) xhr.setRequestHeader('Authorization', `Bearer ${token}`);
    xhr.setRequestHeader('Content-Type', 'application/octet-stream');
    xhr.setRequestHeader('Accept', 'application/json');
    if (sha256) xhr.setRequestHeader('X-Checksum-Sha256', sha256);
    xhr.upload.onprogress = (ev) => onProgress(ev.loaded, ev.lengthComputable ? ev.total : file.size);
    xhr.onerror = () => reject(new ApiError(networkProblem(new Error('upload failed'))));
    xhr.onabort = () => reject(new DOMException('aborted', 'AbortError'));
    xhr.onload = async () => {
      if (xhr.status === 401 && attempt === 0 && (await client.refresh())) {
        inner = uploadArtifact(url, file, onProgress, client, 1, sha256);
        inner.promise.then(resolve, reject);
        return;
      }
      let body: unknown = null;
      try {
        body = xhr.responseText ? JSON.parse(xhr.responseText) : null;
      } catch {
        body = null;
      }
      if (xhr.status >= 200 && xhr.status < 300) {
        resolve(body as Artifact);
        return;
      }
      const p = (body && typeof body === 'object' ? body : {}) as Partial<Problem>;
      reject(
        new ApiError({
          type: p.type ?? 'about:blank',
          title: p.title ?? (xhr.statusText || `HTTP ${xhr.status}`),
          status: xhr.status,
          code: p.code ?? `http_${xhr.status}`,
          detail: p.detail,
          fields: p.fields ?? [],
        }),
      );
    };
    xhr.send(file);
  });
  return {
    promise,
    abort: () => {
      inner?.abort();
      xhr.abort();
    },
  };
}
