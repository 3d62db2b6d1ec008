/** The API as the CLI's client commands see it: MAILPILOT_URL and MAILPILOT_API_KEY (API.md "CLI"). */

export const DEFAULT_URL = 'http://127.0.0.1:8080';

/** The server answered with an error (`{error: {code, message}}`). */
export class ApiCallError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** The call that failed, e.g. `POST /api/v1/lists/3/contacts`. */
    readonly call: string,
  ) {
    super(message);
  }

  /** The call, its status and the server's message in one line. */
  describe(): string {
    return `${this.call} failed (${this.status}): ${this.message}`;
  }
}

/** No answer at all: the server is not running at that address, or the network failed. */
export class UnreachableError extends Error {}

export class ApiClient {
  constructor(
    readonly baseUrl: string,
    private readonly key: string | undefined,
  ) {}

  static fromEnv(env: NodeJS.ProcessEnv = process.env): ApiClient {
    const url = (env.MAILPILOT_URL || DEFAULT_URL).replace(/\/+$/, '');
    if (!URL.canParse(url)) throw new UnreachableError(`MAILPILOT_URL must be an absolute URL, got "${url}"`);
    return new ApiClient(url, env.MAILPILOT_API_KEY || undefined);
  }

  /** The client of MAILPILOT_URL with MAILPILOT_API_KEY, for a command that cannot do without the key. */
  static withKeyFromEnv(env: NodeJS.ProcessEnv = process.env): ApiClient {
    if (!env.MAILPILOT_API_KEY) throw new Error('MAILPILOT_API_KEY must be set to the API key of the user to act as');
    return ApiClient.fromEnv(env);
  }

  /**
   * Sends JSON, a string with its content type, or a stream (sent as it is read, e.g. a CSV file)
   * and returns the parsed JSON reply; throws on any error.
   */
  async request<T = any>(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<T> {
    const headers: Record<string, string> = {};
    if (this.key) headers.authorization = `Bearer ${this.key}`;
    let payload: string | ReadableStream<Uint8Array> | undefined;
    if (body !== undefined) {
      headers['content-type'] = contentType;
      payload = typeof body === 'string' || body instanceof ReadableStream ? body : JSON.stringify(body);
    }
    let res: Response;
    try {
      res = await fetch(this.baseUrl + path, { method, headers, body: payload, duplex: 'half' } as RequestInit);
    } catch (err) {
      const cause = (err as { cause?: { code?: string; errors?: { code?: string }[]; message?: string } }).cause;
      const why = cause?.code ?? cause?.errors?.[0]?.code ?? cause?.message ?? (err as Error).message;
      throw new UnreachableError(`cannot reach MailPilot at ${this.baseUrl} (${why}); is "mailpilot serve" running there? (MAILPILOT_URL)`);
    }
    const text = await res.text();
    let parsed: any;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (!res.ok) {
      const error = parsed?.error;
      const call = `${method} ${path}`;
      if (res.status === 401 && !this.key) throw new ApiCallError(401, 'unauthorized', 'set MAILPILOT_API_KEY to your API key', call);
      throw new ApiCallError(res.status, error?.code ?? 'http_error', error?.message ?? `HTTP ${res.status} from ${call}`, call);
    }
    return parsed as T;
  }
}
