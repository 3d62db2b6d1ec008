import { SMTPServer, type SMTPServerSession } from 'smtp-server';

/** A message as the peer received it. */
export interface ReceivedMessage {
  mailFrom: string;
  rcptTo: string[];
  raw: string;
  /** Header fields by lower-case name (first occurrence), unfolded. */
  headers: Map<string, string>;
  user: string | undefined;
  /** Real time of MAIL FROM (the transaction's start) and of the end of DATA. */
  startedAt: number;
  receivedAt: number;
}

export interface ScriptedError {
  code: number;
  message: string;
}

/**
 * 'drop': the peer closes the connection without replying; 'hang': it never replies (both after
 * the final dot, given by onData).
 */
export type ScriptedReply = ScriptedError | 'drop' | 'hang';

/** How the peer answers; anything not scripted is accepted. */
export interface PeerScript {
  /** Accepted credentials; unset = no AUTH required (a relay) unless `xoauth2` is set. */
  users?: Record<string, string>;
  /** Offers XOAUTH2 and accepts a login when this returns true; a refused token gets Gmail's 334 challenge, then 535. */
  xoauth2?(user: string, accessToken: string): boolean;
  /** Answers a new connection instead of the greeting (a 421, say). */
  onConnect?(session: SMTPServerSession): ScriptedError | undefined;
  /** Answers MAIL FROM. */
  onMailFrom?(address: string, session: SMTPServerSession): ScriptedError | undefined;
  onRcpt?(address: string, session: SMTPServerSession): ScriptedError | undefined;
  /** Called with the whole message before the reply. */
  onData?(message: ReceivedMessage, session: SMTPServerSession): ScriptedReply | undefined;
  /** Keep only envelopes and times, not the raw message (big campaigns). */
  lean?: boolean;
  /** Delays the reply to DATA (ms), to keep sends in flight. */
  dataDelayMs?: number;
  /** Accepts addresses of 254 characters (smtp-server refuses more than 253 unless told). */
  lenientAddresses?: boolean;
  /** Text the greeting carries after the server's name and "ESMTP". */
  banner?: string;
  /** Where to listen (default 127.0.0.1 on a free port). */
  listen?: { host?: string; port?: number };
}

function parseHeaders(raw: string): Map<string, string> {
  const head = raw.split(/\r?\n\r?\n/, 1)[0] ?? '';
  const map = new Map<string, string>();
  for (const field of head.replace(/\r?\n[ \t]+/g, ' ').split(/\r?\n/)) {
    const colon = field.indexOf(':');
    if (colon <= 0) continue;
    const name = field.slice(0, colon).trim().toLowerCase();
    if (!map.has(name)) map.set(name, field.slice(colon + 1).trim());
  }
  return map;
}

export interface SmtpPeer {
  port: number;
  /** Messages the peer accepted (250 after the final dot). */
  messages: ReceivedMessage[];
  /** Every message whose data the peer received, accepted or not. */
  attempts: ReceivedMessage[];
  /** SMTP sessions open right now, and the most ever open at once (tests may reset it). */
  openSessions: number;
  peakSessions: number;
  /** Real time of each connection, in order. */
  connectedAt: number[];
  /** Logins refused (any method). */
  authFailures: number;
  /** Every AUTH the peer was given (accepted or not), as the client sent it. */
  auths: { username: string | undefined; password: string | undefined }[];
  /** TCP connections ever accepted. */
  connections: number;
  close(): Promise<void>;
}

/** A real SMTP server on a loopback port (smtp-server), recording what it receives. */
export async function startSmtpPeer(script: PeerScript = {}): Promise<SmtpPeer> {
  const transactionStarts = new Map<string, number>();
  const peer: SmtpPeer = {
    port: 0,
    messages: [],
    attempts: [],
    openSessions: 0,
    peakSessions: 0,
    connectedAt: [],
    authFailures: 0,
    auths: [],
    connections: 0,
    close: async () => undefined,
  };
  const auth = Boolean(script.users || script.xoauth2);
  const counted = new Set<string>();
  const server = new SMTPServer({
    logger: false,
    disabledCommands: auth ? ['STARTTLS'] : ['STARTTLS', 'AUTH'],
    authMethods: script.xoauth2 ? ['XOAUTH2'] : ['PLAIN', 'LOGIN'],
    authOptional: !auth,
    allowInsecureAuth: true,
    size: 50 * 1024 * 1024,
    lenientAddressParsing: script.lenientAddresses ?? false,
    ...(script.banner === undefined ? {} : { banner: script.banner, name: 'peer' }),
    onConnect(session, cb) {
      peer.connections++;
      peer.connectedAt.push(Date.now());
      const e = script.onConnect?.(session);
      if (e) return cb(Object.assign(new Error(e.message), { responseCode: e.code }));
      counted.add(session.id);
      peer.openSessions++;
      peer.peakSessions = Math.max(peer.peakSessions, peer.openSessions);
      cb();
    },
    onClose(session) {
      if (counted.delete(session.id)) peer.openSessions--;
    },
    onAuth(auth, _session, cb) {
      if (auth.method === 'XOAUTH2') {
        if (script.xoauth2?.(auth.username ?? '', auth.accessToken ?? '')) return cb(null, { user: auth.username });
        peer.authFailures++;
        return cb(null, { data: { status: '401', schemes: 'bearer', scope: 'https://mail.google.com/' } } as never);
      }
      peer.auths.push({ username: auth.username, password: auth.password ?? undefined });
      if (script.users && auth.username && script.users[auth.username] === auth.password) return cb(null, { user: auth.username });
      peer.authFailures++;
      const err = Object.assign(new Error('5.7.8 Authentication credentials invalid'), { responseCode: 535 });
      return cb(err);
    },
    onMailFrom(address, session, cb) {
      const e = script.onMailFrom?.(address.address, session);
      if (e) return cb(Object.assign(new Error(e.message), { responseCode: e.code }));
      transactionStarts.set(session.id, Date.now());
      cb();
    },
    onRcptTo(address, session, cb) {
      const e = script.onRcpt?.(address.address, session);
      if (e) return cb(Object.assign(new Error(e.message), { responseCode: e.code }));
      cb();
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const raw = script.lean ? '' : Buffer.concat(chunks).toString('utf8');
        const message: ReceivedMessage = {
          mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
          rcptTo: session.envelope.rcptTo.map((r) => r.address),
          raw,
          headers: script.lean ? new Map() : parseHeaders(raw),
          user: typeof session.user === 'string' ? session.user : undefined,
          startedAt: transactionStarts.get(session.id) ?? Date.now(),
          receivedAt: Date.now(),
        };
        peer.attempts.push(message);
        const reply = () => {
          const e = script.onData?.(message, session);
          if (e === 'drop') return dropConnection(session.id);
          if (e === 'hang') return;
          if (e) return cb(Object.assign(new Error(e.message), { responseCode: e.code }));
          peer.messages.push(message);
          cb(null, '250 2.0.0 queued');
        };
        if (script.dataDelayMs) setTimeout(reply, script.dataDelayMs);
        else reply();
      });
    },
  });
  // smtp-server keeps its live connections in a set; a drop destroys one's socket without a reply.
  const connections = (server as unknown as { connections: Set<{ id: string; _socket: { destroy(): void } }> }).connections;
  const dropConnection = (sessionId: string) => {
    for (const c of connections) if (c.id === sessionId) c._socket.destroy();
  };
  // A client killed mid-session resets its connection: that is the test's doing, not the peer's failure.
  server.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject);
    server.listen(script.listen?.port ?? 0, script.listen?.host ?? '127.0.0.1', resolve);
  });
  peer.port = (server.server.address() as { port: number }).port;
  peer.close = () => new Promise((resolve) => server.close(() => resolve()));
  return peer;
}

/** Peers a test file starts as it goes (`start`), all closed together in its afterAll (`closeAll`). */
export function smtpPeers(): { start(script?: PeerScript): Promise<SmtpPeer>; closeAll(): Promise<void> } {
  const started: SmtpPeer[] = [];
  return {
    async start(script = {}) {
      const p = await startSmtpPeer(script);
      started.push(p);
      return p;
    },
    async closeAll() {
      for (const p of started.splice(0)) await p.close();
    },
  };
}
