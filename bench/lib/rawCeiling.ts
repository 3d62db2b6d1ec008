import { connect } from 'node:net';
import nodemailer from 'nodemailer';
import MailComposer from 'nodemailer/lib/mail-composer/index.js';
import type SMTPPool from 'nodemailer/lib/smtp-pool/index.js';
import { contact, FROM_NAME, HTML_TEMPLATE, personalise, SUBJECT, TEXT_TEMPLATE } from './content.ts';
import { logger } from './report.ts';

const log = logger('raw');

interface Prepared {
  raw: Buffer;
  envelope: { from: string; to: string[] };
}

/**
 * Renders every message in full before the clock starts, with the headers MailPilot promises
 * (API.md "Every message sent"), so that only the SMTP sending is timed.
 */
async function prerender(count: number, senders: number): Promise<Prepared[]> {
  const out: Prepared[] = [];
  for (let i = 0; i < count; i++) {
    const c = contact(i);
    const from = `sender${i % senders}@bench.test`;
    const raw = await new MailComposer({
      from: { name: FROM_NAME, address: from },
      to: c.email,
      subject: personalise(SUBJECT, c),
      html: personalise(HTML_TEMPLATE, c),
      text: personalise(TEXT_TEMPLATE, c),
      messageId: `<raw.${i}@bench.test>`,
      headers: {
        'List-Unsubscribe': `<http://127.0.0.1:8080/u/${i.toString(36).padStart(24, '0')}>`,
        'List-Unsubscribe-Post': 'List-Unsubscribe=One-Click',
        'X-MailPilot-Campaign': '1',
      },
    })
      .compile()
      .build();
    out.push({ raw, envelope: { from, to: [c.email] } });
  }
  return out;
}

/**
 * A pooled transport of `connections` connections. Nagle is off (SMTP-FACTS "Measured here":
 * delayed ACKs stall a busy connection), requeues are off as in the engine, and a connection is
 * never recycled, since reconnecting is not what is being measured.
 */
function transport(port: number, connections: number) {
  const options: SMTPPool.Options & { maxRequeues: number } = {
    pool: true,
    host: '127.0.0.1',
    port,
    secure: false,
    ignoreTLS: true,
    maxConnections: connections,
    maxMessages: Infinity,
    maxRequeues: 0,
    getSocket(_opts, callback) {
      const socket = connect({ host: '127.0.0.1', port, noDelay: true });
      const failed = (err: Error) => callback(err, null);
      socket.once('error', failed);
      // From here on nodemailer owns the socket and its errors.
      socket.once('connect', () => {
        socket.off('error', failed);
        callback(null, { connection: socket });
      });
    },
  };
  return nodemailer.createTransport(options);
}

/**
 * How the ceiling's connections are driven:
 * - `perConnection`: one single-connection transport per connection, as MailPilot runs one per
 *   account, each with one message in flight, after an untimed warm-up;
 * - `pooled`: one transport pooling every connection, `inFlight` messages handed to it at once and
 *   no warm-up (issue #18's reference: 10 connections, 40 in flight).
 */
export type CeilingMode = { kind: 'perConnection'; warmup: number } | { kind: 'pooled'; inFlight: number };

export interface RawCeilingResult {
  /** Timed messages; the warm-up ones went to the sink before them. */
  messages: number;
  warmupMessages: number;
  sent: number;
  failed: number;
  seconds: number;
  msgPerSec: number;
  /** Mean size of the pre-rendered messages as handed to nodemailer (before dot-stuffing). */
  messageBytes: number;
  firstError: string | null;
}

/** Sends `messages` pre-rendered messages over `connections` connections to the sink at `port`, timed. */
export async function measureRawCeiling(opts: { port: number; messages: number; connections: number; mode: CeilingMode }): Promise<RawCeilingResult> {
  const { port, messages, connections, mode } = opts;
  // Untimed messages sent first, so that JIT compilation and connection set-up stay off the clock.
  const warmup = mode.kind === 'perConnection' ? mode.warmup : 0;

  const renderStart = performance.now();
  const prepared = await prerender(messages, connections);
  const messageBytes = Math.round(prepared.reduce((n, p) => n + p.raw.length, 0) / messages);
  log(`pre-rendered ${messages} messages of ${messageBytes} bytes on average in ${((performance.now() - renderStart) / 1000).toFixed(1)} s`);

  const transports =
    mode.kind === 'pooled' ? [transport(port, connections)] : Array.from({ length: connections }, () => transport(port, 1));
  const lanes = mode.kind === 'pooled' ? Array.from({ length: mode.inFlight }, () => transports[0]!) : transports;
  let next = 0;
  let sent = 0;
  let failed = 0;
  let firstError: string | null = null;

  /*
   * Per connection, one message at a time already keeps a single-connection transport busy:
   * nodemailer marks a connection available one setImmediate after a send completes, and by then
   * this loop has queued the next message from the promise's microtask (measured here: 2 in flight
   * was never faster). Every lane takes the next unsent message, so a faster connection simply
   * sends more of them.
   */
  const lane = async (t: (typeof transports)[number], count: number) => {
    for (let i = next++; i < count; i = next++) {
      try {
        await t.sendMail(prepared[i]!);
        sent++;
      } catch (err) {
        failed++;
        firstError ??= err instanceof Error ? err.message : String(err);
      }
    }
  };
  const sendAll = (count: number) => Promise.all(lanes.map((t) => lane(t, count)));

  try {
    if (warmup > 0) {
      await sendAll(Math.min(warmup, messages));
      if (failed > 0) throw new Error(`raw ceiling warm-up: ${failed} messages failed: ${firstError}`);
      log(`warm-up: ${sent} messages sent`);
      next = 0;
      sent = 0;
    }

    const start = performance.now();
    let lastCount = 0;
    let lastAt = start;
    const progress = setInterval(() => {
      const now = performance.now();
      const done = sent + failed;
      log(`${done}/${messages} done, ${Math.round(((done - lastCount) * 1000) / (now - lastAt))} msg/s in the last second`);
      lastCount = done;
      lastAt = now;
    }, 1000);
    try {
      await sendAll(messages);
    } finally {
      clearInterval(progress);
    }
    const seconds = (performance.now() - start) / 1000;
    const msgPerSec = Math.round(sent / seconds);
    log(`${sent} sent, ${failed} failed in ${seconds.toFixed(2)} s: ${msgPerSec} msg/s over ${connections} connections (${mode.kind})`);
    return { messages, warmupMessages: Math.min(warmup, messages), sent, failed, seconds: Number(seconds.toFixed(3)), msgPerSec, messageBytes, firstError };
  } finally {
    for (const t of transports) t.close();
  }
}
