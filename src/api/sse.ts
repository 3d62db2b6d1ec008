import type { FastifyReply } from 'fastify';

/** Comment lines keep idle connections open through proxies that cut silent ones (often at 30-60 s). */
const HEARTBEAT_MS = 15_000;
/** How long a browser's EventSource waits before reconnecting after the stream drops. */
const RECONNECT_MS = 3_000;

/** One open Server-Sent Events response. */
export interface EventStream {
  send(event: string, data: unknown): void;
  /** Runs once, when the client goes away or the stream is ended. */
  onClose(fn: () => void): void;
  end(): void;
  readonly closed: boolean;
}

/**
 * Takes the response over from Fastify (which would otherwise end it when the handler returns) and
 * turns it into an event stream: headers that stop buffering and caching, heartbeats, and one
 * cleanup when either side ends it. `onSent` is told the name of each event written.
 */
export function openEventStream(reply: FastifyReply, onSent?: (event: string) => void): EventStream {
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    connection: 'keep-alive',
    // nginx buffers proxied responses unless told not to.
    'x-accel-buffering': 'no',
  });
  res.write(`retry: ${RECONNECT_MS}\n\n`);
  const cleanups: (() => void)[] = [];
  let closed = false;
  const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), HEARTBEAT_MS);
  const close = () => {
    if (closed) return;
    closed = true;
    clearInterval(heartbeat);
    for (const fn of cleanups.splice(0)) fn();
  };
  res.on('close', close);
  return {
    send(event, data) {
      if (closed) return;
      res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
      onSent?.(event);
    },
    onClose(fn) {
      if (closed) fn();
      else cleanups.push(fn);
    },
    end() {
      close();
      res.end();
    },
    get closed() {
      return closed;
    },
  };
}
