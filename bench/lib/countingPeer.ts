import { SMTPServer } from 'smtp-server';

/** What the peer saw open at one instant. */
export interface WireSnapshot {
  /** SMTP sessions open. */
  openConnections: number;
  /** Transactions started (MAIL FROM) and not yet answered after their data, nor ended with their session. */
  inFlight: number;
}

export interface CountingPeer {
  port: number;
  /** Messages whose final dot the peer has read: each counts as delivered, answered or not (a sender killed mid-reply may never hear the 250). */
  delivered: number;
  snapshot(): WireSnapshot;
  /** Starts a new epoch (one per sender process life): deliveries are tagged with the epoch they came in. */
  nextEpoch(): void;
  /** Per recipient, the epochs of its deliveries, in order. */
  deliveries(): ReadonlyMap<string, readonly number[]>;
  close(): Promise<void>;
}

/**
 * A real SMTP server (smtp-server) on a loopback port that counts deliveries per recipient and
 * per sender life, and knows at any instant which sessions and transactions are open: what a crash
 * benchmark needs and Postfix's smtp-sink cannot tell (it counts messages, not recipients).
 * `dataDelayMs` holds each reply to the data, as a distant server's round trip would, so that
 * sends are on the wire when a sender dies. Keeps one small array per recipient: meant for
 * thousands of recipients, not millions.
 */
export async function startCountingPeer(opts: { dataDelayMs?: number } = {}): Promise<CountingPeer> {
  const open = new Set<string>();
  const inTransaction = new Set<string>();
  const deliveries = new Map<string, number[]>();
  let epoch = 0;
  let delivered = 0;
  const server = new SMTPServer({
    logger: false,
    disabledCommands: ['STARTTLS', 'AUTH'],
    authOptional: true,
    size: 10 * 1024 * 1024,
    onConnect(session, cb) {
      open.add(session.id);
      cb();
    },
    onClose(session) {
      open.delete(session.id);
      inTransaction.delete(session.id);
    },
    onMailFrom(_address, session, cb) {
      inTransaction.add(session.id);
      cb();
    },
    onData(stream, session, cb) {
      stream.on('data', () => undefined);
      stream.on('end', () => {
        delivered++;
        for (const r of session.envelope.rcptTo) {
          const seen = deliveries.get(r.address);
          if (seen) seen.push(epoch);
          else deliveries.set(r.address, [epoch]);
        }
        const reply = () => {
          inTransaction.delete(session.id);
          cb(null, '250 2.0.0 queued');
        };
        if (opts.dataDelayMs) setTimeout(reply, opts.dataDelayMs);
        else reply();
      });
    },
  });
  // A sender killed mid-session resets its connections: that is the benchmark's doing.
  server.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return {
    port: (server.server.address() as { port: number }).port,
    get delivered() {
      return delivered;
    },
    snapshot: () => ({ openConnections: open.size, inFlight: inTransaction.size }),
    nextEpoch: () => void epoch++,
    deliveries: () => deliveries,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
