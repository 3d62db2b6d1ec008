import type { FastifyInstance } from 'fastify';
import { STATUS_CODES, type IncomingMessage, type ServerOptions, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { HttpTimeouts } from '../config.ts';

/**
 * Time limits on what clients send, so a client that trickles bytes cannot hold a connection (and
 * a request's resources) for as long as it likes:
 * - headers: all of them within `headersMs` (Node's headersTimeout, checked every CHECK_INTERVAL_MS);
 * - an ordinary body: all of it within `bodyMs` of the headers;
 * - a streamed upload (a route with `config: { upload: 'stream' }`, the CSV imports): no deadline,
 *   since a large file may take many minutes, but at least `uploadMinBytes` in every
 *   `uploadWindowMs` in which the server is waiting for data (not while it holds the upload back
 *   because the database is busy).
 * Past a limit the client gets 408 `request_timeout` and the connection is closed.
 */

declare module 'fastify' {
  interface FastifyContextConfig {
    upload?: 'stream';
  }
}

/** How often Node looks for requests whose headers are late. */
const CHECK_INTERVAL_MS = 1_000;

/** The HTTP server's own limits (Fastify's `http` option). No total request deadline: bodies are bounded below. */
export function httpServerOptions(t: HttpTimeouts): ServerOptions {
  return { headersTimeout: t.headersMs, requestTimeout: 0, connectionsCheckingInterval: CHECK_INTERVAL_MS };
}

/**
 * Fastify's `clientErrorHandler`: what Node refuses before any route runs (late headers, headers
 * too large, not HTTP) answered in the API's error shape, then the connection closed.
 */
export function clientErrorHandler(t: HttpTimeouts) {
  return (err: NodeJS.ErrnoException, socket: Duplex): void => {
    if (err.code === 'ECONNRESET' || socket.destroyed) return;
    const [status, code, message] =
      err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'request_timeout', `headers: not all received within ${t.headersMs / 1000} s`]
        : err.code === 'HPE_HEADER_OVERFLOW'
          ? [431, 'headers_too_large', 'headers: larger than the server accepts']
          : [400, 'malformed_request', 'not a valid HTTP/1.1 request'];
    const body = JSON.stringify({ error: { code, message } });
    if (socket.writable) {
      socket.write(
        `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
          `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
    }
    socket.destroy();
  };
}

/** Answers 408 (unless a reply has begun) and closes the connection: the rest of the body is not waited for. */
function timeOut(req: IncomingMessage, res: ServerResponse, reason: string): void {
  if (req.complete) return;
  const socket = req.socket;
  if (res.headersSent) return void socket.destroy();
  const body = JSON.stringify({ error: { code: 'request_timeout', message: `body: ${reason}` } });
  res.writeHead(408, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), connection: 'close' });
  res.end(body, () => socket.destroy());
}

/** Bounds the time each request's body may take to arrive (see the module comment). */
export function boundRequestBodies(app: FastifyInstance, t: HttpTimeouts): void {
  app.addHook('onRequest', async (req, reply) => {
    const raw = req.raw;
    if (raw.complete) return;
    let stop: () => void;
    if (req.routeOptions.config.upload === 'stream') {
      const socket = raw.socket;
      let seen = socket.bytesRead;
      const timer = setInterval(() => {
        const arrived = socket.bytesRead - seen;
        seen = socket.bytesRead;
        // Data waiting to be read, or a paused stream: the server is holding the upload back.
        const heldBack = raw.readableFlowing === false || raw.readableLength > 0;
        if (!heldBack && arrived < t.uploadMinBytes) {
          timeOut(raw, reply.raw, `the upload sent less than ${t.uploadMinBytes} bytes in ${t.uploadWindowMs / 1000} s`);
        }
      }, t.uploadWindowMs);
      stop = () => clearInterval(timer);
    } else {
      const timer = setTimeout(() => timeOut(raw, reply.raw, `not all received within ${t.bodyMs / 1000} s`), t.bodyMs);
      stop = () => clearTimeout(timer);
    }
    raw.once('end', stop);
    raw.once('close', stop);
  });
}
