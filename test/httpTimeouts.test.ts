import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HTTP_TIMEOUT_VARIABLES, loadConfig, type HttpTimeouts } from '../src/config.ts';
import { databaseKinds } from './helpers/db.ts';
import { must } from './helpers/fixtures.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';

/** Short limits, so a test trickles for seconds rather than minutes. */
const LIMITS: HttpTimeouts = { headersMs: 1000, bodyMs: 1500, uploadMinBytes: 2048, uploadWindowMs: 1000 };

interface Trickled {
  /** Real time from the first byte to the server closing the connection (ms). */
  closedAfterMs: number;
  bytesSent: number;
  reply: string;
}

/**
 * Opens a raw connection, sends `head` at once (when given), then `trickle` one chunk every
 * `everyMs`, until the server closes the connection or `giveUpMs` passes.
 */
function rawRequest(port: number, head: string, trickle: string[], everyMs: number, giveUpMs: number): Promise<Trickled> {
  return new Promise((resolve) => {
    const started = Date.now();
    const socket = net.connect(port, '127.0.0.1');
    let reply = '';
    let sent = 0;
    let timer: NodeJS.Timeout | undefined;
    const done = () => {
      clearInterval(timer);
      clearTimeout(giveUp);
      resolve({ closedAfterMs: Date.now() - started, bytesSent: sent, reply });
    };
    const giveUp = setTimeout(() => {
      socket.destroy();
      done();
    }, giveUpMs);
    socket.on('connect', () => {
      socket.write(head);
      timer = setInterval(() => {
        const chunk = trickle.shift();
        if (chunk === undefined) return;
        socket.write(chunk);
        sent += chunk.length;
      }, everyMs);
    });
    socket.on('data', (d) => (reply += d));
    socket.on('error', () => undefined);
    socket.on('close', done);
  });
}

describe('HTTP time limits come from the environment', () => {
  it('reads each variable in seconds (bytes for the upload rate), defaults each, and names the variable of a bad value', () => {
    expect(loadConfig({}).http).toEqual({ headersMs: 10_000, bodyMs: 30_000, uploadMinBytes: 16_384, uploadWindowMs: 30_000 });
    const env = Object.fromEntries(Object.values(HTTP_TIMEOUT_VARIABLES).map((v, i) => [v.variable, String(i + 2)]));
    expect(loadConfig(env).http).toEqual({ headersMs: 2000, bodyMs: 3000, uploadMinBytes: 4, uploadWindowMs: 5000 });
    expect(() => loadConfig({ MAILPILOT_BODY_TIMEOUT_SECONDS: 'soon' })).toThrow(/^MAILPILOT_BODY_TIMEOUT_SECONDS must be a whole number of seconds/);
  });
});

describe.each(databaseKinds)('a client cannot hold a request open by sending slowly (%s)', (kind) => {
  let t: TestMailPilot;
  let key: string;
  let port: number;
  beforeAll(async () => {
    t = await startTestMailPilot(kind, { engine: false, config: { http: LIMITS } });
    key = (await t.createUser()).apiKey;
    port = Number(new URL(t.url).port);
  });
  afterAll(() => t.close());

  const headers = (path: string, type: string, length?: number) =>
    `POST ${path} HTTP/1.1\r\nHost: mp.test\r\nConnection: close\r\nAuthorization: Bearer ${key}\r\nContent-Type: ${type}\r\n` +
    (length === undefined ? 'Transfer-Encoding: chunked\r\n' : `Content-Length: ${length}\r\n`) +
    '\r\n';
  const chunked = (data: string) => `${Buffer.byteLength(data).toString(16)}\r\n${data}\r\n`;

  it('answers a 40-byte body trickled a byte at a time with 408 and closes the connection at the body limit', async () => {
    const body = JSON.stringify({ name: 'x'.repeat(29) });
    expect(body).toHaveLength(40);
    // A byte every 250 ms would take 10 s.
    const r = await rawRequest(port, headers('/api/v1/lists', 'application/json', body.length), [...body], 250, 10_000);
    expect(r.reply).toMatch(/^HTTP\/1\.1 408 /);
    expect(r.reply).toContain('{"error":{"code":"request_timeout","message":"body: not all received within 1.5 s"}}');
    expect(r.bytesSent).toBeLessThan(body.length);
    expect(r.closedAfterMs).toBeLessThan(5000);
    expect((await must(t, key, 'GET', '/api/v1/lists')).items).toEqual([]);
  });

  it('answers headers trickled a byte at a time with 408 and closes the connection at the headers limit', async () => {
    const head = headers('/api/v1/lists', 'application/json', 2);
    const r = await rawRequest(port, head.slice(0, 5), [...head.slice(5)], 100, 10_000);
    expect(r.reply).toMatch(/^HTTP\/1\.1 408 /);
    expect(r.reply).toContain('{"error":{"code":"request_timeout","message":"headers: not all received within 1 s"}}');
    expect(r.closedAfterMs).toBeLessThan(5000);
  });

  it('lets a streamed CSV import take longer than the body limit while it keeps the minimum rate, and cuts one that falls below it', async () => {
    const list = await must(t, key, 'POST', '/api/v1/lists', { name: 'slow upload' });
    const path = `/api/v1/lists/${list.id}/contacts`;
    // 4 s of upload in 16 chunks of ~3 KB every 250 ms: above 2 KB a second, and longer than the 1.5 s body limit.
    const rows = (from: number) => Array.from({ length: 100 }, (_, i) => `r${from + i}@rcpt.test,Recipient number ${from + i}`).join('\n') + '\n';
    const chunks = ['email,name\n', ...Array.from({ length: 16 }, (_, c) => rows(c * 100))].map(chunked);
    const steady = await rawRequest(port, headers(path, 'text/csv'), [...chunks, '0\r\n\r\n'], 250, 20_000);
    expect(steady.reply).toMatch(/^HTTP\/1\.1 200 /);
    expect(steady.reply).toContain('"added":1600');
    expect(steady.closedAfterMs).toBeGreaterThan(LIMITS.bodyMs);

    // 40 bytes a second, under the minimum.
    const slow = await rawRequest(port, headers(path, 'text/csv'), ['email\n', ...Array.from({ length: 40 }, (_, i) => `s${i}@rcpt.test\n`)].map(chunked), 500, 20_000);
    expect(slow.reply).toMatch(/^HTTP\/1\.1 408 /);
    expect(slow.reply).toContain('"message":"body: the upload sent less than 2048 bytes in 1 s"');
    expect(slow.closedAfterMs).toBeLessThan(5000);
  });
});
