// A scripted fetch for client and component tests: each call is matched by method and path and answered by a
// handler; every call is recorded.

export interface Call {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: unknown;
}

export type Handler = (call: Call) => Response | Promise<Response>;

export function json(status: number, body: unknown, type = 'application/json'): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': type } });
}

export function problem(status: number, code: string, title: string, extra: Record<string, unknown> = {}): Response {
  return json(status, { type: `https://tamarack.dev/problems/${code}`, title, status, code, ...extra }, 'application/problem+json');
}

export function fakeFetch(routes: Record<string, Handler>) {
  const calls: Call[] = [];
  const fn = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const url = String(input);
    const method = (init?.method ?? 'GET').toUpperCase();
    const headers = { ...(init?.headers as Record<string, string>) };
    const body = typeof init?.body === 'string' ? JSON.parse(init.body) : undefined;
    const call = { method, url, headers, body };
    calls.push(call);
    const path = url.replace(/^https?:\/\/[^/]+/, '').split('?')[0];
    const h = routes[`${method} ${path}`];
    if (!h) return json(404, { title: 'no route in test', status: 404, code: 'route_not_found' });
    return h(call);
  };
  return { fetch: fn as typeof fetch, calls };
}
