import { SMTPServer, type SMTPServerDataStream, type SMTPServerSession } from 'smtp-server';
import type { AppContext } from '../context.ts';
import type { ReportReceipt } from '../events.ts';
import { takeInMessage } from './reportIntake.ts';
import { ThrottledLog } from './throttledLog.ts';
import { readVerpAddress, type VerpClaim } from './verp.ts';

/** The largest message taken (SIZE, RFC 1870); a bigger one is refused with 552. */
export const MAX_MESSAGE_BYTES = 10 * 1024 * 1024;
/**
 * Bytes of a message kept for reading: the report's fields and the returned headers come first
 * (RFC 3464 §2, RFC 5965 §2), the returned body after them is not needed.
 */
export const READ_BYTES = 256 * 1024;
/** SMTP sessions open at once; more are answered 421 and closed. */
export const MAX_SESSIONS = 20;
/** Recipients in one transaction; a report has one. */
const MAX_RECIPIENTS = 10;
/** How long one connection may last, whatever it does, and how long it may stay silent. */
const SESSION_MS = 2 * 60_000;
const SOCKET_TIMEOUT_MS = 30_000;
/** Reports being applied at once; past that a delivery is answered 451 and the sender retries later. */
const MAX_APPLYING = 50;

export interface InboundSmtp {
  port: number;
  close(): Promise<void>;
}

interface Connection {
  id: string;
  _socket: { destroy(): void };
}

const smtpError = (code: number, message: string) => Object.assign(new Error(message), { responseCode: code });

/**
 * The inbound SMTP port (`MAILPILOT_INBOUND_PORT`): where the MX of the accounts' bounce domains
 * points. It takes mail only for the VERP addresses MailPilot used as envelope senders (verified
 * at RCPT, 550 otherwise), so DSNs, ARF reports and automatic replies sent back to them reach the
 * one message they name, in its user's tenant scope. Bounded: message size, bytes read, sessions,
 * a session's length and silence, recipients per message, reports applied at once. Replies 451
 * (try again later) when its database is unreachable or the message's send is still being recorded.
 */
export async function startInboundSmtp(ctx: AppContext, listen: { host: string; port: number }): Promise<InboundSmtp> {
  const log = new ThrottledLog(ctx.log);
  const secrets = () => [ctx.secrets.secretKey, ...ctx.secrets.previousKeys];
  const deadlines = new Map<string, NodeJS.Timeout>();
  let applying = 0;
  const refused = (reason: string) => {
    ctx.events.emit({ type: 'report.received', userId: 0, source: 'smtp', result: 'refused' });
    log.write('info', `smtp:refused:${reason}`, { source: 'smtp', reason }, `refused an inbound SMTP delivery: ${reason}`);
  };

  const server: SMTPServer = new SMTPServer({
    name: 'mailpilot',
    banner: 'MailPilot reports',
    logger: false,
    authOptional: true,
    disabledCommands: ['AUTH', 'STARTTLS'],
    size: MAX_MESSAGE_BYTES,
    maxClients: MAX_SESSIONS,
    socketTimeout: SOCKET_TIMEOUT_MS,
    closeTimeout: 1_000,
    onConnect(session, cb) {
      const timer = setTimeout(() => drop(session.id), SESSION_MS);
      timer.unref();
      deadlines.set(session.id, timer);
      cb();
    },
    onClose(session) {
      clearTimeout(deadlines.get(session.id));
      deadlines.delete(session.id);
    },
    onRcptTo(address, session, cb) {
      if (session.envelope.rcptTo.length >= MAX_RECIPIENTS) {
        refused('too many recipients');
        return cb(smtpError(452, '4.5.3 Too many recipients'));
      }
      if (!readVerpAddress(secrets(), address.address)) {
        refused('not a VERP address of this MailPilot');
        return cb(smtpError(550, '5.1.1 No such mailbox here'));
      }
      cb();
    },
    onData(stream, session, cb) {
      void receive(stream, session).then(
        (reply) => (reply === 'ok' ? cb(null, '2.0.0 Report received') : cb(reply)),
        (err: unknown) => {
          ctx.log.warn({ err, source: 'smtp' }, 'could not apply an inbound report; the sender is asked to retry');
          cb(smtpError(451, '4.3.0 Try again later'));
        },
      );
    },
  });

  const drop = (sessionId: string) => {
    const connections = (server as unknown as { connections: Set<Connection> }).connections;
    for (const c of connections) if (c.id === sessionId) c._socket.destroy();
  };

  /** Reads at most READ_BYTES of the message and applies it to each recipient's message. */
  async function receive(stream: SMTPServerDataStream, session: SMTPServerSession): Promise<'ok' | Error> {
    const chunks: Buffer[] = [];
    let kept = 0;
    let total = 0;
    await new Promise<void>((resolve) => {
      stream.on('data', (chunk: Buffer) => {
        total += chunk.length;
        if (kept < READ_BYTES) {
          const part = chunk.subarray(0, READ_BYTES - kept);
          chunks.push(part);
          kept += part.length;
        }
        // Past twice the limit the sender is not going to stop: it is cut off, not read to the end.
        if (total > 2 * MAX_MESSAGE_BYTES) {
          drop(session.id);
          resolve();
        }
      });
      stream.on('end', () => resolve());
      stream.on('error', () => resolve());
    });
    if (stream.sizeExceeded || total > MAX_MESSAGE_BYTES) {
      refused('message too big');
      return smtpError(552, `5.3.4 Message too big (at most ${MAX_MESSAGE_BYTES} bytes)`);
    }
    if (applying >= MAX_APPLYING) {
      refused('too many reports at once');
      return smtpError(451, '4.3.2 Too busy, try again later');
    }
    applying++;
    try {
      const raw = Buffer.concat(chunks);
      const mailFrom = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
      const receipts: ReportReceipt[] = [];
      for (const rcpt of session.envelope.rcptTo) {
        const delivery: VerpClaim | undefined = readVerpAddress(secrets(), rcpt.address);
        if (delivery) receipts.push(await takeInMessage(ctx, log, raw, { source: 'smtp', delivery, mailFrom }));
      }
      return receipts.includes('deferred') ? smtpError(451, '4.3.0 Not ready for this report yet, try again later') : 'ok';
    } finally {
      applying--;
    }
  }

  // A client that resets its connection mid-session is no failure of ours.
  server.on('error', (err) => log.write('debug', 'smtp:error', { err: (err as Error).message }, 'inbound SMTP connection error'));
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(listen.port, listen.host, () => {
      server.server.off('error', reject);
      resolve();
    });
  });
  const port = (server.server.address() as { port: number }).port;
  ctx.log.info({ host: listen.host, port }, 'inbound SMTP listening for bounces, complaints and replies');
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const t of deadlines.values()) clearTimeout(t);
        server.close(() => resolve());
      }),
  };
}
