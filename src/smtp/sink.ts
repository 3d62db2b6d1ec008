import { SMTPServer } from 'smtp-server';

export interface Sink {
  port: number;
  received: number;
  close(): Promise<void>;
}

/**
 * A local SMTP server that accepts every message and keeps nothing: somewhere to send a first
 * campaign without a real mail server (the README walk-through, `mailpilot demo`).
 */
export async function startSink(opts: { port: number; host: string; onMessage?: (from: string, to: string[], bytes: number) => void }): Promise<Sink> {
  const sink: Sink = { port: opts.port, received: 0, close: async () => undefined };
  const server = new SMTPServer({
    logger: false,
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    allowInsecureAuth: true,
    onAuth: (_auth, _session, cb) => cb(null, { user: 'sink' }),
    onData(stream, session, cb) {
      let bytes = 0;
      stream.on('data', (chunk: Buffer) => (bytes += chunk.length));
      stream.on('end', () => {
        sink.received++;
        const from = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
        opts.onMessage?.(from, session.envelope.rcptTo.map((r) => r.address), bytes);
        cb(null, '250 2.0.0 accepted by the MailPilot sink');
      });
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(opts.port, opts.host, () => resolve());
  });
  sink.port = (server.server.address() as { port: number }).port;
  sink.close = () => new Promise((resolve) => server.close(() => resolve()));
  return sink;
}
