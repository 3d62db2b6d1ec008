/**
 * The client side of the CLI: commands that talk to a running MailPilot over HTTP, at MAILPILOT_URL
 * with the key in MAILPILOT_API_KEY, and print what it answers.
 */
export interface ClientConfig {
  url: string;
  apiKey: string;
}

const DEFAULT_URL = 'http://127.0.0.1:8080';

export function loadClientConfig(env: NodeJS.ProcessEnv = process.env): ClientConfig {
  const url = (env.MAILPILOT_URL || DEFAULT_URL).replace(/\/+$/, '');
  if (!URL.canParse(url)) throw new Error(`MAILPILOT_URL must be an absolute URL, got "${url}"`);
  if (!env.MAILPILOT_API_KEY) throw new Error('MAILPILOT_API_KEY must be set to the API key of the user to act as');
  return { url, apiKey: env.MAILPILOT_API_KEY };
}

/** What the server answered with an error status, as its `{error: {message}}` says it. */
export class ClientError extends Error {}

/** One API call: the body is sent as JSON unless it is a stream (sent as it is read, with `contentType`). */
export async function callApi<T>(
  config: ClientConfig,
  method: string,
  path: string,
  opts: { json?: unknown; stream?: ReadableStream<Uint8Array>; contentType?: string } = {},
): Promise<T> {
  const headers: Record<string, string> = { authorization: `Bearer ${config.apiKey}` };
  let body: string | ReadableStream<Uint8Array> | undefined;
  if (opts.stream) {
    headers['content-type'] = opts.contentType ?? 'application/octet-stream';
    body = opts.stream;
  } else if (opts.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(opts.json);
  }
  let res: Response;
  try {
    res = await fetch(config.url + path, { method, headers, body, duplex: 'half' } as RequestInit);
  } catch (err) {
    throw new ClientError(`cannot reach MailPilot at ${config.url}: ${(err as Error).message}`);
  }
  const text = await res.text();
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (!res.ok) {
    const message = (parsed as { error?: { message?: string } } | undefined)?.error?.message ?? text.slice(0, 500);
    throw new ClientError(`${method} ${path} failed (${res.status}): ${message}`);
  }
  return parsed as T;
}
