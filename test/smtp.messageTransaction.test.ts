import net from 'node:net';
import { SMTPServer } from 'smtp-server';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { dataLines, ReplyReader, type SmtpReply } from '../src/smtp/messageTransaction.ts';
import { AccountTransport, transportOptions } from '../src/smtp/transport.ts';
import { smtpPeers } from './helpers/smtpPeer.ts';

// Short deadlines: a client that waits for a reply the server holds back fails in seconds.
const options = transportOptions(loadConfig({ MAILPILOT_SMTP_ALLOW: 'loopback' }), { greetingMs: 5_000, socketMs: 5_000, openMs: 5_000, sendMs: 3_000 });
const server = (port: number) => ({ host: '127.0.0.1', port, security: 'none' as const });
const relay = { username: null, password: null };

function message(body: string): Buffer {
  return Buffer.from(`From: a@sender.test\r\nTo: b@example.test\r\nSubject: t\r\n\r\n${body}`);
}

type Answer = string[] | Promise<string[]>;

/**
 * A server speaking raw SMTP from a script: `answer` gets each command line (and '.' for the end
 * of a message) and returns the replies to write, 'close' to drop the connection, or a promise of
 * them. Records every line, each chunk as it arrived, and the lines that arrived while an answer
 * was still pending (`early`).
 */
async function rawServer(ehlo: string[], answer: (line: string) => Answer) {
  const recorded = { lines: [] as string[], chunks: [] as string[], early: 0 };
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    let inData = false;
    let pending = 0;
    let partial = '';
    const reply = async (answered: Answer) => {
      pending++;
      for (const r of await answered) {
        if (r === 'close') socket.destroy();
        else socket.write(`${r}\r\n`);
        inData ||= r.startsWith('354');
      }
      pending--;
    };
    socket.write('220 raw.test ESMTP\r\n');
    socket.on('data', (chunk: Buffer) => {
      recorded.chunks.push(chunk.toString('latin1'));
      const parts = (partial + chunk.toString('latin1')).split('\r\n');
      partial = parts.pop()!;
      for (const line of parts) {
        recorded.lines.push(line);
        if (inData) {
          if (line === '.') {
            inData = false;
            void reply(answer('.'));
          }
          continue;
        }
        if (pending > 0) recorded.early++;
        if (/^EHLO /i.test(line)) void reply(ehlo.map((e, i) => `250${i === ehlo.length - 1 ? ' ' : '-'}${e}`));
        else if (line === 'QUIT') socket.end('221 bye\r\n');
        else if (line === 'RSET') void reply(['250 reset']);
        else void reply(answer(line));
      }
    });
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  return Object.assign(recorded, {
    port: (srv.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        srv.close(() => resolve());
      }),
  });
}

describe('the SMTP message transaction', () => {
  const peers = smtpPeers();
  const closers: (() => Promise<void>)[] = [];
  let transport: AccountTransport | undefined;
  afterEach(async () => {
    transport?.close();
    for (const close of closers.splice(0)) await close();
  });
  afterAll(() => peers.closeAll());

  async function raw(ehlo: string[], answer: Parameters<typeof rawServer>[1]) {
    const s = await rawServer(ehlo, answer);
    closers.push(s.close);
    transport = new AccountTransport(server(s.port), relay, 1, options);
    return s;
  }

  it('reads replies split anywhere, multi-line ones whole, and stops at a line that is not a reply', () => {
    const replies: SmtpReply[] = [];
    let garbage = 0;
    const reader = new ReplyReader(
      (r) => replies.push(r),
      () => garbage++,
    );
    for (const piece of ['25', '0 2.1.0 Ok\r\n250-first\r', '\n250 second\n35', '4 go ahead\r\n']) reader.push(Buffer.from(piece));
    expect(replies).toEqual([
      { code: 250, text: '250 2.1.0 Ok' },
      { code: 250, text: '250-first\n250 second' },
      { code: 354, text: '354 go ahead' },
    ]);
    reader.push(Buffer.from('HTTP/1.1 400 Bad Request\r\n'));
    expect(garbage).toBe(1);
  });

  it('doubles a leading dot, makes every line end in CRLF and adds the final dot, copying nothing when no line needs it', () => {
    const join = (b: Buffer) => Buffer.concat(dataLines(b)).toString();
    expect(join(Buffer.from('.a\r\nb\r\n..c\r\n.\r\nd'))).toBe('..a\r\nb\r\n...c\r\n..\r\nd\r\n.\r\n');
    expect(join(Buffer.from('a\nb\r\n\n.c\n'))).toBe('a\r\nb\r\n\r\n..c\r\n.\r\n');
    const plain = Buffer.from('a\r\nb\r\n');
    const parts = dataLines(plain);
    expect(parts).toHaveLength(2);
    expect(parts[0]!.buffer).toBe(plain.buffer);
  });

  it('delivers a message whose lines start with dots byte for byte to a real SMTP server (smtp-server, which offers PIPELINING)', async () => {
    const peer = await peers.start();
    transport = new AccountTransport(server(peer.port), relay, 1, options);
    const body = '.leading\r\n..two\r\n.\r\nend\r\n';
    const first = await transport.send('a@sender.test', 'b@example.test', message(body));
    const second = await transport.send('a@sender.test', 'c@example.test', message('second\r\n'));
    expect([first.kind, second.kind]).toEqual(['sent', 'sent']);
    expect(peer.messages.map((m) => [m.raw, m.rcptTo])).toEqual([
      [message(body).toString(), ['b@example.test']],
      [message('second\r\n').toString(), ['c@example.test']],
    ]);
    expect(peer.connections).toBe(1);
  });

  it('sends MAIL FROM, RCPT TO and DATA in one write when the server offers PIPELINING (a server that answers only once it has all three)', async () => {
    let held = 0;
    const s = await raw(['raw.test', 'PIPELINING'], (line) => {
      if (line === '.') return ['250 2.0.0 queued'];
      if (/^(MAIL|RCPT)/.test(line)) return (held++, []);
      if (line === 'DATA') return held === 2 ? ['250 ok', '250 ok', '354 go ahead'] : ['503 not pipelined'];
      return ['500 ?'];
    });
    expect(await transport!.send('a@sender.test', 'b@example.test', message('hi\r\n'))).toEqual({ kind: 'sent', response: '250 2.0.0 queued' });
    expect(s.chunks.find((c) => c.startsWith('MAIL'))).toBe('MAIL FROM:<a@sender.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n');
  });

  it('waits for each reply when the server does not offer PIPELINING', async () => {
    // Each reply comes a moment later: a client that does not wait sends its next command meanwhile.
    const later = (reply: string) => new Promise<string[]>((resolve) => setTimeout(() => resolve([reply]), 20));
    const s = await raw(['raw.test', '8BITMIME'], (line) => later(line === '.' ? '250 2.0.0 queued' : line === 'DATA' ? '354 go ahead' : '250 ok'));
    expect(await transport!.send('a@sender.test', 'b@example.test', message('hi\r\n'))).toEqual({ kind: 'sent', response: '250 2.0.0 queued' });
    expect(s.early).toBe(0);
    expect(s.lines.filter((l) => /^(MAIL|RCPT|DATA)/.test(l))).toEqual(['MAIL FROM:<a@sender.test>', 'RCPT TO:<b@example.test>', 'DATA']);
  });

  it('reports the first refusal of a pipelined group, ends a DATA the server accepted anyway with a lone dot, and resets the session for the next message', async () => {
    const s = await raw(['raw.test', 'PIPELINING'], (line) => {
      if (line.startsWith('RCPT TO:<gone@')) return ['550 5.1.1 no such user'];
      if (line === 'DATA') return ['354 go ahead'];
      if (line === '.') return s.lines.at(-2) === 'DATA' ? ['554 5.5.1 no valid recipients'] : ['250 2.0.0 queued'];
      return ['250 ok'];
    });
    expect(await transport!.send('a@sender.test', 'gone@example.test', message('hi\r\n'))).toMatchObject({
      kind: 'failed',
      cause: 'hard_bounce',
      error: '550 5.1.1 no such user',
    });
    expect(await transport!.send('a@sender.test', 'b@example.test', message('next\r\n'))).toMatchObject({ kind: 'sent' });
    expect(s.lines.filter((l) => !/^EHLO/.test(l))).toEqual([
      'MAIL FROM:<a@sender.test>',
      'RCPT TO:<gone@example.test>',
      'DATA',
      '.',
      'RSET',
      'MAIL FROM:<a@sender.test>',
      'RCPT TO:<b@example.test>',
      'DATA',
      ...message('next\r\n').toString().split('\r\n').slice(0, -1),
      '.',
    ]);
  });

  it('takes a 421 to MAIL FROM in a pipelined group as the end of the session, in the server\'s words', async () => {
    await raw(['raw.test', 'PIPELINING'], (line) => (line.startsWith('MAIL') ? ['421 4.7.0 too busy, closing', 'close'] : []));
    expect(await transport!.send('a@sender.test', 'b@example.test', message('hi\r\n'))).toEqual({ kind: 'session_ended', error: '421 4.7.0 too busy, closing' });
  });

  for (const security of ['starttls', 'tls'] as const) {
    it(`sends over ${security === 'tls' ? 'implicit TLS' : 'STARTTLS'}: the transaction speaks on the encrypted socket`, async () => {
      const received: { raw: string; secure: boolean }[] = [];
      const tlsServer = new SMTPServer({
        logger: false,
        secure: security === 'tls',
        authOptional: true,
        onData(stream, session, cb) {
          const chunks: Buffer[] = [];
          stream.on('data', (c: Buffer) => chunks.push(c));
          stream.on('end', () => {
            received.push({ raw: Buffer.concat(chunks).toString(), secure: session.secure });
            cb();
          });
        },
      });
      await new Promise<void>((resolve) => tlsServer.listen(0, '127.0.0.1', resolve));
      closers.push(() => new Promise((resolve) => tlsServer.close(() => resolve())));
      // smtp-server's built-in certificate is self-signed; this test is about the socket the bytes go on.
      const before = process.env.NODE_TLS_REJECT_UNAUTHORIZED;
      process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
      try {
        const port = (tlsServer.server.address() as net.AddressInfo).port;
        transport = new AccountTransport({ host: '127.0.0.1', port, security }, relay, 1, options);
        const outcomes = [
          await transport.send('a@sender.test', 'b@example.test', message('.one\r\n')),
          await transport.send('a@sender.test', 'c@example.test', message('two\r\n')),
        ];
        expect(outcomes.map((o) => o.kind)).toEqual(['sent', 'sent']);
      } finally {
        if (before === undefined) delete process.env.NODE_TLS_REJECT_UNAUTHORIZED;
        else process.env.NODE_TLS_REJECT_UNAUTHORIZED = before;
      }
      expect(received).toEqual([
        { raw: message('.one\r\n').toString(), secure: true },
        { raw: message('two\r\n').toString(), secure: true },
      ]);
    });
  }

  it('refuses an address that would end the command early, without sending it', async () => {
    const s = await raw(['raw.test', 'PIPELINING'], () => ['250 ok']);
    expect(await transport!.send('a@sender.test', 'b@example.test>\r\nRCPT TO:<c@example.test', message('hi\r\n'))).toMatchObject({ kind: 'failed', cause: 'local' });
    expect(s.lines.filter((l) => /^(MAIL|RCPT)/.test(l))).toEqual([]);
  });
});
