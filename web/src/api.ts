// The HTTP API client (docs/API.md): JSON in and out, the bearer token, errors as ApiError.

export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
    public retryAfter?: number,
  ) {
    super(message);
  }
}

let token: string | null = null;
let onUnauthorized: () => void = () => {};

export function setToken(t: string | null): void {
  token = t;
}

export function getToken(): string | null {
  return token;
}

/** Called when the server says the token is no longer valid (revoked or expired). */
export function setUnauthorizedHandler(f: () => void): void {
  onUnauthorized = f;
}

export async function api<T = any>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(`/api/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, 'network', 'the server cannot be reached');
  }
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  let data: any = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    if (res.status === 401 && token) onUnauthorized();
    throw new ApiError(res.status, data?.error ?? 'http_' + res.status, data?.message ?? res.statusText, data?.retry_after);
  }
  return data as T;
}

export const get = <T = any>(p: string) => api<T>('GET', p);
export const post = <T = any>(p: string, b: unknown = {}) => api<T>('POST', p, b);
export const patch = <T = any>(p: string, b: unknown) => api<T>('PATCH', p, b);
export const put = <T = any>(p: string, b?: unknown) => api<T>('PUT', p, b);
export const del = <T = any>(p: string) => api<T>('DELETE', p);

/** Every page of a paged list (bounded: at most `maxPages` pages of 100). */
export async function all<T>(path: string, maxPages = 20): Promise<T[]> {
  const out: T[] = [];
  const sep = path.includes('?') ? '&' : '?';
  for (let page = 1; page <= maxPages; page++) {
    const p = await get<{ items: T[]; has_more: boolean }>(`${path}${sep}page=${page}&size=100`);
    out.push(...p.items);
    if (!p.has_more) break;
  }
  return out;
}

/**
 * Uploads a file's bytes (`POST /api/v1/uploads?name=`, the raw body) with XMLHttpRequest, whose
 * upload events give the progress that fetch does not. `done` resolves to the Attachment.
 */
export function upload(
  body: Blob,
  name: string,
  voice: boolean,
  progress: (fraction: number) => void,
): { done: Promise<import('./types').Attachment>; abort: () => void } {
  const xhr = new XMLHttpRequest();
  const done = new Promise<import('./types').Attachment>((resolve, reject) => {
    xhr.open('POST', `/api/v1/uploads?name=${encodeURIComponent(name)}${voice ? '&kind=voice' : ''}`);
    if (token) xhr.setRequestHeader('Authorization', `Bearer ${token}`);
    xhr.setRequestHeader('Content-Type', body.type || 'application/octet-stream');
    xhr.upload.onprogress = (e) => e.lengthComputable && progress(e.loaded / e.total);
    xhr.onerror = () => reject(new ApiError(0, 'network', 'the server cannot be reached'));
    xhr.onabort = () => reject(new ApiError(0, 'aborted', 'upload cancelled'));
    xhr.onload = () => {
      let data: any = null;
      try {
        data = JSON.parse(xhr.responseText);
      } catch {
        data = null;
      }
      if (xhr.status >= 200 && xhr.status < 300 && data) resolve(data);
      else {
        if (xhr.status === 401 && token) onUnauthorized();
        reject(new ApiError(xhr.status, data?.error ?? 'http_' + xhr.status, data?.message ?? xhr.statusText));
      }
    };
    xhr.send(body);
  });
  return { done, abort: () => xhr.abort() };
}

const blobs = new Map<string, Promise<string>>();

/** An object URL of an authorised download (the token stays in a header, not in the URL). */
export function blobUrl(path: string): Promise<string> {
  let p = blobs.get(path);
  if (!p) {
    p = (async () => {
      const res = await fetch(`/api/v1${path}`, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
      if (!res.ok) throw new ApiError(res.status, 'http_' + res.status, res.statusText);
      return URL.createObjectURL(await res.blob());
    })();
    p.catch(() => blobs.delete(path));
    blobs.set(path, p);
  }
  return p;
}
