/**
 * One SMTP mail transaction (RFC 5321 §3.3) on a connection that is already open: greeted, EHLO
 * answered, TLS and AUTH done (by nodemailer, see transport.ts). When the server offers PIPELINING
 * (RFC 2920) MAIL FROM, RCPT TO and DATA go out in one write and the message in a second: two
 * writes and two round trips per message instead of four of each.
 */
import type { SmtpFailure } from './classify.ts';

/** A complete reply: its code and its lines joined by `\n`, as the server sent them. */
export interface SmtpReply {
  code: number;
  text: string;
}

/** The open connection as a transaction sees it. */
export interface ReplyChannel {
  /** Hands bytes to the connection, as one write where the socket allows. */
  write(chunks: Buffer[]): void;
  /** The server's next reply; rejects when the connection is lost. */
  reply(): Promise<SmtpReply>;
  /** The server's EHLO reply offered PIPELINING. */
  readonly pipelining: boolean;
  /** The server's EHLO reply offered SMTPUTF8 (RFC 6531). */
  readonly smtpUtf8: boolean;
}

export type TransactionResult = { sent: SmtpReply } | { refused: SmtpFailure };

type Stage = 'MAIL FROM' | 'RCPT TO' | 'DATA';

const CRLF = Buffer.from('\r\n');
const FINAL_DOT = Buffer.from('.\r\n');
const EXTRA_DOT = Buffer.from('.');
const [CR, LF, DOT] = [0x0d, 0x0a, 0x2e];
// A CR or LF would end the command early and let the rest of the address be read as another one.
const UNSAFE_ADDRESS = /[\r\n<>]/;
const NON_ASCII = /[^\x00-\x7f]/;

/**
 * Splits incoming bytes into replies (RFC 5321 §4.2: `ddd-` continues a reply, `ddd ` or `ddd`
 * ends it). A line that does not start with a reply code is passed to `onGarbage`: the peer no
 * longer speaks SMTP.
 */
export class ReplyReader {
  private partial = '';
  private lines: string[] = [];

  constructor(
    private readonly onReply: (reply: SmtpReply) => void,
    private readonly onGarbage: () => void,
  ) {}

  push(chunk: Buffer): void {
    const text = this.partial + chunk.toString('latin1');
    const lines = text.split('\n');
    this.partial = lines.pop()!;
    for (const raw of lines) {
      const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
      const code = /^([2-5]\d\d)(?:([ -])|$)/.exec(line);
      if (!code) return this.onGarbage();
      this.lines.push(line);
      if (code[2] === '-') continue;
      const reply = { code: Number(code[1]), text: this.lines.join('\n') };
      this.lines = [];
      this.onReply(reply);
    }
  }
}

/**
 * The replies of an open connection in order, for a transaction to await one at a time (at most one
 * waits: a transaction reads its replies in turn). Replies that arrive before they are asked for wait
 * here; `fail` rejects the one asked for and every later ask.
 */
export class ReplyQueue {
  private readonly ready: SmtpReply[] = [];
  private waiter: { resolve(r: SmtpReply): void; reject(e: Error): void } | undefined;
  private failed: Error | undefined;
  private readonly reader: ReplyReader;

  constructor(onGarbage: () => void) {
    this.reader = new ReplyReader((reply) => {
      const waiter = this.waiter;
      this.waiter = undefined;
      if (waiter) waiter.resolve(reply);
      else this.ready.push(reply);
    }, onGarbage);
  }

  push(chunk: Buffer): void {
    this.reader.push(chunk);
  }

  next(): Promise<SmtpReply> {
    const ready = this.ready.shift();
    if (ready) return Promise.resolve(ready);
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
  }

  fail(err: Error): void {
    this.failed ??= err;
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.reject(err);
  }
}

/**
 * The message as DATA carries it (RFC 5321 §4.5.2): a line starting with a dot gets a second one,
 * every line ends in CRLF, then the final dot. Returns the pieces to write; the message's own
 * bytes are not copied when no line needs changing (the usual case).
 */
export function dataLines(message: Buffer): Buffer[] {
  const parts: Buffer[] = [];
  let from = 0;
  if (message[0] === DOT) parts.push(EXTRA_DOT);
  for (let lf = message.indexOf(LF); lf !== -1; lf = message.indexOf(LF, lf + 1)) {
    const bareLf = lf === 0 || message[lf - 1] !== CR;
    const dotNext = message[lf + 1] === DOT;
    if (!bareLf && !dotNext) continue;
    if (bareLf) parts.push(message.subarray(from, lf), CRLF);
    else parts.push(message.subarray(from, lf + 1));
    if (dotNext) parts.push(EXTRA_DOT);
    from = lf + 1;
  }
  parts.push(message.subarray(from));
  if (message.length > 0 && message[message.length - 1] !== LF) parts.push(CRLF);
  parts.push(FINAL_DOT);
  return parts;
}

function refusal(stage: Stage, reply: SmtpReply): SmtpFailure {
  return {
    message: `the server refused ${stage}`,
    code: stage === 'DATA' ? 'EMESSAGE' : 'EENVELOPE',
    responseCode: reply.code,
    response: reply.text,
    command: stage,
  };
}

const accepts = (stage: Stage, reply: SmtpReply) => (stage === 'DATA' ? reply.code >= 200 && reply.code < 400 : reply.code >= 200 && reply.code < 300);

/**
 * Sends one message to one recipient. `dataSent` is called the moment the message and its final
 * dot are handed to the connection (from then on a lost connection means "maybe delivered").
 * Resolves with the reply after the final dot, or the first refusal (nodemailer's error shape, for
 * classify.ts). Rejects when the connection is lost.
 */
export async function sendMessage(
  channel: ReplyChannel,
  envelope: { from: string; to: string },
  message: Buffer,
  dataSent: () => void,
): Promise<TransactionResult> {
  const { from, to } = envelope;
  for (const [what, address] of [
    ['sender', from],
    ['recipient', to],
  ] as const) {
    if (UNSAFE_ADDRESS.test(address)) return { refused: { message: `invalid ${what} address`, code: 'EENVELOPE', command: 'API' } };
  }
  const utf8 = channel.smtpUtf8 && (NON_ASCII.test(from) || NON_ASCII.test(to)) ? ' SMTPUTF8' : '';
  const commands: [Stage, string][] = [
    ['MAIL FROM', `MAIL FROM:<${from}>${utf8}\r\n`],
    ['RCPT TO', `RCPT TO:<${to}>\r\n`],
    ['DATA', 'DATA\r\n'],
  ];
  let refused: SmtpFailure | undefined;
  let dataOpen = false;
  if (channel.pipelining) {
    channel.write([Buffer.from(commands.map(([, line]) => line).join(''))]);
    for (const [stage] of commands) {
      const reply = await channel.reply();
      if (accepts(stage, reply)) {
        dataOpen = stage === 'DATA';
        continue;
      }
      refused ??= refusal(stage, reply);
      // 421: the server closes the connection (RFC 5321 §3.8); the replies to the rest never come.
      if (reply.code === 421) return { refused };
    }
  } else {
    for (const [stage, line] of commands) {
      channel.write([Buffer.from(line)]);
      const reply = await channel.reply();
      if (!accepts(stage, reply)) return { refused: refusal(stage, reply) };
    }
    dataOpen = true;
  }
  if (refused) {
    // DATA accepted after a refused command (RFC 2920 §3.1): an empty message ends it.
    if (dataOpen) {
      channel.write([FINAL_DOT]);
      await channel.reply();
    }
    return { refused };
  }
  channel.write(dataLines(message));
  dataSent();
  const reply = await channel.reply();
  return reply.code >= 200 && reply.code < 300 ? { sent: reply } : { refused: refusal('DATA', reply) };
}
