import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Metrics } from './metrics.ts';
import { sameKey } from './secrets.ts';

/** Header bytes a scrape may send: Prometheus sends a few hundred. */
const MAX_HEADER_BYTES = 8 * 1024;
/** A scraper that has not sent its request by then is cut off. */
const REQUEST_TIMEOUT_MS = 10_000;

export interface MetricsServer {
  /** Base URL, e.g. http://127.0.0.1:9464 */
  url: string;
  close(): Promise<void>;
}

/**
 * `GET /metrics` of a process that serves no API (`mailpilot worker`, MAILPILOT_METRICS_PORT). It
 * takes the admin key, like serve's /metrics: its series carry the ids of every tenant's accounts.
 * Anything else is a 404; errors are JSON like the API's.
 */
export async function startMetricsServer(metrics: Metrics, adminKey: string, at: { host: string; port: number }): Promise<MetricsServer> {
  const server = createServer({ maxHeaderSize: MAX_HEADER_BYTES, requestTimeout: REQUEST_TIMEOUT_MS }, (req, res) => {
    const fail = (status: number, code: string, message: string) => {
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify({ error: { code, message } }));
    };
    const path = (req.url ?? '').split('?')[0];
    if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) return fail(404, 'not_found', `no route ${req.method} ${path}`);
    const key = /^Bearer +(\S+) *$/i.exec(req.headers.authorization ?? '')?.[1];
    if (!key || !sameKey(key, adminKey)) return fail(401, 'unauthorized', 'send the admin key as "Authorization: Bearer <key>"');
    metrics.scrape().then(
      (text) => res.writeHead(200, { 'content-type': metrics.contentType }).end(req.method === 'HEAD' ? undefined : text),
      () => fail(500, 'internal', 'could not read the metrics; the server log has the details'),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(at.port, at.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const host = at.host.includes(':') ? `[${at.host}]` : at.host;
  return {
    url: `http://${host}:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
