import type net from 'node:net';
import SMTPConnection from 'nodemailer/lib/smtp-connection/index.js';
import XOAuth2 from 'nodemailer/lib/xoauth2/index.js';
import type { Config, PlaintextAuth } from '../config.ts';
import { allowedAddresses, connectChecked, EgressRefused, hostResolver, type HostResolver } from '../net/egressConnect.ts';
import { hostLiteral, isLoopback, type EgressPolicy } from '../net/egressPolicy.ts';
import type { Security } from '../states.ts';
import { classifyError, type SendOutcome, type SmtpFailure } from './classify.ts';
import { ReplyQueue, sendMessage, type ReplyChannel } from './messageTransaction.ts';
import { OAuthTokenError, type TokenSource } from './oauthTokens.ts';

export interface ServerSettings {
  host: string;
  port: number;
  security: Security;
}

export interface AccountCredentials {
  username: string | null;
  password: string | null;
  /** Logs in with XOAUTH2 (an OAuth2 access token) instead of a password. */
  xoauth2?: TokenSource;
}

/** How long each part of a session may take (ms). */
export interface SessionTimeouts {
  /** From connecting to the server's greeting (the TCP connection included). */
  greetingMs: number;
  /** Silence in the middle of a conversation. */
  socketMs: number;
  /** From the start to a session ready to send: resolving, greeting, EHLO, TLS, AUTH. */
  openMs: number;
  /** One message, from MAIL FROM to the reply after the final dot (or an RSET after a refusal). */
  sendMs: number;
}

export const ENGINE_TIMEOUTS: SessionTimeouts = { greetingMs: 15_000, socketMs: 60_000, openMs: 60_000, sendMs: 10 * 60_000 };

/** What the server may send in answer to one step (opening the session, or one message): SMTP replies are short. */
const MAX_REPLY_BYTES = 64 * 1024;
const MAX_REPLY_CHARS = 500;

export interface TransportOptions {
  egress: EgressPolicy;
  resolve: HostResolver;
  plaintextAuth: PlaintextAuth;
  timeouts: SessionTimeouts;
  /** Told once per session: `opened` (greeted, TLS and login done), or the class of its failure (sessionResult). */
  onSession?: (result: string) => void;
}

/**
 * A failed session open by class, for metrics: the local problem (egress_denied, unresolved,
 * not_smtp, timed_out, plaintext_auth), the disabled cause (credentials, oauth_revoked, ...) or the
 * outcome kind (session_ended, account_throttled, ...). A bounded set: no server text.
 */
export function sessionFailureClass(outcome: TransportOutcome): string {
  if (outcome.problem) return outcome.problem;
  return outcome.kind === 'account_disabled' ? outcome.cause : outcome.kind;
}

/** The transport settings of this installation (config.ts), with the given timeouts. */
export function transportOptions(
  config: Pick<Config, 'smtpEgress' | 'smtpPlaintextAuth' | 'dnsServers'>,
  timeouts: SessionTimeouts = ENGINE_TIMEOUTS,
): TransportOptions {
  return { egress: config.smtpEgress, resolve: hostResolver(config.dnsServers), plaintextAuth: config.smtpPlaintextAuth, timeouts };
}

/**
 * Trouble MailPilot reports in its own words, never the peer's: a peer that has not shown itself an
 * SMTP server (greeting, then an answer to EHLO) may be any service, and what it sent is not ours
 * to repeat; closed, silent and talking ports all read `not_smtp`.
 */
export type ConnectionProblem = 'egress_denied' | 'unresolved' | 'not_smtp' | 'timed_out' | 'plaintext_auth';

export type TransportOutcome = SendOutcome & { problem?: ConnectionProblem };

/** What of nodemailer's connection the message transaction uses once the session is open. */
type Connection = SMTPConnection & {
  allowsAuth?: boolean;
  /** The socket it speaks on: the TLS socket after STARTTLS. */
  _socket: net.Socket;
  /** The extensions the EHLO reply offered (PIPELINING, SMTPUTF8, ...). */
  _supportedExtensions: string[];
};

// Control characters of a reply are not passed on (logs, the dashboard, terminals).
const printable = (s: string | undefined) => s?.replace(/[\x00-\x09\x0b-\x1f\x7f]/g, ' ').slice(0, MAX_REPLY_CHARS * 2);

/** A failure as classify.ts reads it, with the peer's words made printable (the one place they are). */
function shown(failure: SmtpFailure): SmtpFailure {
  return { ...failure, message: printable(failure.message)!, response: printable(failure.response) };
}

function failureOf(err: SMTPConnection.SMTPError | Error, dataSent: boolean): SmtpFailure {
  const e = err as Partial<SMTPConnection.SMTPError>;
  return shown({
    message: err.message,
    code: e.code,
    responseCode: typeof e.responseCode === 'number' ? e.responseCode : undefined,
    response: e.response,
    command: e.command,
    dataSent,
    token: err instanceof OAuthTokenError ? err.failure : undefined,
  });
}

/**
 * XOAUTH2 through nodemailer: it asks for a token, and when the server refuses it, asks once more
 * with `renew` (smtp-connection's own retry), which is when the cached token is replaced.
 */
function xoauth2Login(tokens: TokenSource): SMTPConnection.AuthenticationOAuth2 {
  let used: string | undefined;
  const oauth2 = new XOAuth2({
    user: tokens.user,
    provisionCallback: (_user, renew, callback) => {
      const token = renew && used !== undefined ? tokens.renew(used) : tokens.current();
      token.then(
        (t) => callback(null, (used = t), 0),
        (err: Error) => callback(err, '', 0),
      );
    },
  });
  return { oauth2: oauth2 as unknown as SMTPConnection.OAuth2 };
}

function problemOutcome(problem: ConnectionProblem, server: ServerSettings, dataSent: boolean, said?: string): TransportOutcome {
  const at = `the server at ${server.host}:${server.port}`;
  switch (problem) {
    case 'egress_denied':
      return { kind: 'account_disabled', error: said!, cause: 'refused_locally', problem };
    case 'plaintext_auth':
      return {
        kind: 'account_disabled',
        error: `the account's password is only sent over an encrypted connection, and ${at} is not on this machine: set the server's security to starttls or tls`,
        cause: 'refused_locally',
        problem,
      };
    case 'unresolved':
      return { kind: 'account_throttled', error: said!, slowDown: false, problem };
    case 'timed_out':
      if (dataSent) return { kind: 'unknown', error: `${at} did not answer in time after the message was sent`, problem };
      return { kind: 'account_throttled', error: `${at} did not answer in time`, slowDown: false, problem };
    case 'not_smtp':
      if (dataSent) return { kind: 'unknown', error: `${at} stopped answering as an SMTP server after the message was sent`, problem };
      return { kind: 'account_throttled', error: `${at} did not answer as an SMTP server`, slowDown: false, problem };
  }
}

const connectionClosed = () => Object.assign(new Error('connection closed'), { code: 'ECONNECTION', command: 'CONN' });

/**
 * One SMTP connection, opened and authenticated once, then used for one message after another. It
 * goes only to addresses the egress policy allows (resolved and checked here, and the checked address
 * is the one connected to; TLS still checks the certificate against the host name).
 */
class Session {
  readonly ready: Promise<void>;
  dead = false;
  /** Fails whatever the session is doing when the connection errors or closes under it. */
  private onLoss: ((err: Error) => void) | undefined;
  private conn: Connection | undefined;
  private socket: net.Socket | undefined;
  /** Set when MailPilot ends the session itself: what to report instead of the connection's error. */
  private ending: ConnectionProblem | undefined;
  /** The peer greeted and answered EHLO as an SMTP server: its replies may be shown from then on. */
  private spokeSmtp = false;
  private received = 0;
  private deadline: NodeJS.Timeout | undefined;
  /**
   * Set once the session is open: from then on MailPilot reads the replies itself (the message
   * transaction, messageTransaction.ts); nodemailer keeps the socket's errors, close and timeout.
   */
  private replies: ReplyQueue | undefined;
  private channel: ReplyChannel | undefined;
  /** performance.now() when the session began. */
  readonly startedAt = performance.now();

  constructor(
    private readonly server: ServerSettings,
    credentials: AccountCredentials,
    private readonly opts: TransportOptions,
    private readonly onDead: (s: Session) => void,
  ) {
    this.ready = new Promise<void>((resolve, reject) => {
      this.onLoss = reject;
      this.expireIn(opts.timeouts.openMs);
      const opened = () => {
        clearTimeout(this.deadline);
        this.onLoss = undefined;
        this.takeOver();
        resolve();
      };
      this.open(credentials, opened).catch((err: Error) => this.lost(err));
    });
    // A failed open is reported by the send that waits on it.
    this.ready.catch(() => undefined);
  }

  private async open(credentials: AccountCredentials, opened: () => void): Promise<void> {
    const { host, port, security } = this.server;
    const addresses = await allowedAddresses(host, this.opts.egress, this.opts.resolve);
    if (this.dead) return;
    // Nagle's algorithm plus delayed ACKs stall each message ~40 ms when the process does other
    // I/O between sends (SMTP-FACTS "Measured here"): the socket goes to nodemailer with it off.
    const socket = (this.socket = connectChecked(host, addresses, port));
    const conn: Connection = (this.conn = new SMTPConnection({
      host: hostLiteral(host) ?? host,
      port,
      secure: security === 'tls',
      requireTLS: security === 'starttls',
      ignoreTLS: security === 'none',
      connection: socket,
      greetingTimeout: this.opts.timeouts.greetingMs,
      socketTimeout: this.opts.timeouts.socketMs,
      logger: false,
    }) as Connection);
    this.capReplies(conn);
    conn.on('error', (err: Error) => this.lost(err));
    conn.on('end', () => this.lost(connectionClosed()));
    conn.connect(() => {
      this.spokeSmtp = true;
      this.received = 0;
      const { username, password, xoauth2 } = credentials;
      if ((!xoauth2 && (username === null || password === null)) || !conn.allowsAuth) return opened();
      // A password or an access token goes over an unencrypted connection only to this machine.
      if (!conn.secure && !this.mayAuthInPlaintext(socket.remoteAddress)) return this.end('plaintext_auth');
      conn.login(xoauth2 ? xoauth2Login(xoauth2) : { user: username!, pass: password! }, (err) => {
        if (!err) return opened();
        this.lost(err);
        this.close();
      });
    });
  }

  private mayAuthInPlaintext(remoteAddress: string | undefined): boolean {
    return this.opts.plaintextAuth === 'always' || (remoteAddress !== undefined && isLoopback(remoteAddress));
  }

  /**
   * Bounds what the peer may send per step: nodemailer gathers a reply's lines, and a reply's
   * unfinished line, in memory without limit. Its socket handlers call `_onData`, so counting there
   * sees every byte (after TLS).
   */
  private capReplies(conn: Connection): void {
    const inner = conn as unknown as { _onData(chunk: Buffer): void };
    const onData = inner._onData.bind(conn);
    inner._onData = (chunk: Buffer) => {
      this.received += chunk?.length ?? 0;
      if (this.received > MAX_REPLY_BYTES) return this.end('not_smtp');
      if (this.replies) this.replies.push(chunk);
      else onData(chunk);
    };
  }

  /** Reads the replies from here on (see `replies`); nodemailer's queue is empty after the login. */
  private takeOver(): void {
    const conn = this.conn!;
    const replies = (this.replies = new ReplyQueue(() => this.end('not_smtp')));
    const extensions = conn._supportedExtensions;
    this.channel = {
      pipelining: extensions.includes('PIPELINING'),
      smtpUtf8: extensions.includes('SMTPUTF8'),
      write: (chunks) => {
        const socket = conn._socket;
        if (chunks.length > 1) socket.cork();
        for (const chunk of chunks) socket.write(chunk);
        if (chunks.length > 1) socket.uncork();
      },
      reply: () => replies.next(),
    };
  }

  private lost(err: Error): void {
    if (!this.dead) {
      this.dead = true;
      clearTimeout(this.deadline);
      this.onDead(this);
    }
    this.replies?.fail(err);
    const fail = this.onLoss;
    this.onLoss = undefined;
    fail?.(err);
  }

  /** After `ms`, whatever the session is doing fails as timed out. */
  private expireIn(ms: number): void {
    clearTimeout(this.deadline);
    this.deadline = setTimeout(() => this.end('timed_out'), ms);
    this.deadline.unref();
  }

  /** What a failure means, in MailPilot's words where the peer has not shown itself an SMTP server. */
  outcomeOf(err: Error, dataSent: boolean): TransportOutcome {
    // The policy refused the server's host, or the OAuth2 token URL's when the login asked for a token.
    if (err instanceof EgressRefused) return problemOutcome(err.reason === 'denied' ? 'egress_denied' : 'unresolved', this.server, false, err.message);
    const problem = this.ending ?? (this.spokeSmtp ? undefined : 'not_smtp');
    if (problem) return problemOutcome(problem, this.server, dataSent);
    return classifyError(failureOf(err, dataSent));
  }

  /**
   * Sends one message. `dataSent` turns true the moment the message and its final dot are handed to
   * the connection: a connection lost before it means "not delivered", after it "maybe".
   */
  send(from: string, to: string, raw: string | Buffer): Promise<{ outcome: TransportOutcome; reusable: boolean }> {
    this.received = 0;
    this.expireIn(this.opts.timeouts.sendMs);
    return new Promise((resolve) => {
      let dataSent = false;
      const settle = (outcome: TransportOutcome, reusable: boolean) => {
        clearTimeout(this.deadline);
        resolve({ outcome, reusable });
      };
      this.onLoss = (err) => settle(this.outcomeOf(err, dataSent), false);
      const message = typeof raw === 'string' ? Buffer.from(raw) : raw;
      sendMessage(this.channel!, { from, to }, message, () => (dataSent = true)).then(
        (result) => {
          if (!this.onLoss) return;
          this.onLoss = undefined;
          if ('sent' in result) return settle({ kind: 'sent', response: String(printable(result.sent.text)).slice(0, MAX_REPLY_CHARS) }, true);
          settle(classifyError(shown({ ...result.refused, dataSent })), !this.dead);
        },
        // A lost connection was reported through onLoss.
        () => undefined,
      );
    });
  }

  /** Clears a refused transaction (RSET) so the connection can carry the next message. */
  reset(): Promise<boolean> {
    this.received = 0;
    this.expireIn(this.opts.timeouts.sendMs);
    return new Promise((resolve) => {
      const settle = (ok: boolean) => {
        clearTimeout(this.deadline);
        resolve(ok);
      };
      this.onLoss = () => settle(false);
      this.channel!.write([Buffer.from('RSET\r\n')]);
      this.channel!.reply().then(
        (reply) => {
          if (!this.onLoss) return;
          this.onLoss = undefined;
          settle(reply.code >= 200 && reply.code < 300);
        },
        () => undefined,
      );
    });
  }

  /** Says goodbye when idle; a session still opening or busy is dropped instead, so nothing waits on it. */
  quit(): void {
    if (!this.conn || !this.spokeSmtp || this.onLoss) return this.close();
    this.dead = true;
    clearTimeout(this.deadline);
    // Back to nodemailer, which closes the connection on the reply to QUIT.
    this.replies = undefined;
    this.conn.quit();
  }

  /** Ends the session on MailPilot's side; what it was doing fails as `problem`. */
  end(problem: ConnectionProblem): void {
    this.ending ??= problem;
    this.close();
  }

  /** Drops the connection at once (a peer that never answers would hold a polite close open). */
  close(): void {
    this.conn?.close();
    this.socket?.destroy();
    this.lost(connectionClosed());
  }
}

/**
 * One account's SMTP sessions: up to `maxSessions` connections, each reused message after message.
 * Nodemailer's pool is not used: it resends a message whose connection dropped (nodemailer #1105)
 * and cannot tell a drop before the final dot (safe to send again) from one after it (maybe
 * delivered). Here every send knows its stage, and close() ends every session at once.
 */
export class AccountTransport {
  private readonly sessions = new Set<Session>();
  private idle: Session[] = [];
  private waiting: ((s: Session | undefined) => void)[] = [];
  /** Sends holding back a `not_smtp` answer (see send); close() lets them go at once. */
  private readonly holding = new Set<() => void>();
  private closed = false;
  /** performance.now() before which no new session opens (see holdNewSessions). */
  private reopenAt = 0;
  private reopenTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly server: ServerSettings,
    private readonly credentials: AccountCredentials,
    private maxSessions: number,
    private readonly options: TransportOptions,
  ) {}

  /** Opens no new session for `ms` (the server just ended one); sessions already open carry on. */
  holdNewSessions(ms: number): void {
    this.reopenAt = Math.max(this.reopenAt, performance.now() + ms);
  }

  /** From now on at most `max` sessions: idle ones beyond it are closed, busy ones close when released. */
  limitSessions(max: number): void {
    this.maxSessions = Math.min(this.maxSessions, Math.max(1, max));
    while (this.sessions.size > this.maxSessions && this.idle.length > 0) {
      const s = this.idle.pop()!;
      s.quit();
      this.forget(s);
    }
  }

  async send(from: string, to: string, raw: string | Buffer): Promise<TransportOutcome> {
    const session = await this.acquire();
    if (!session) return { kind: 'account_throttled', error: 'the account transport was closed', slowDown: false };
    try {
      await session.ready;
    } catch (err) {
      this.release(session, false);
      const outcome = session.outcomeOf(err as Error, false);
      // Answered no sooner than a silent peer is given up on: when a failure comes tells a closed port
      // from a silent one as well as its words would (for the engine, through the account's health).
      if (outcome.problem === 'not_smtp') await this.holdUntil(session.startedAt + this.options.timeouts.greetingMs);
      return outcome;
    }
    const { outcome, reusable } = await session.send(from, to, raw);
    // A session the server ended (or has no room left on, 452 4.5.3) is closed even if the socket is still up.
    if (outcome.kind === 'session_ended') this.release(session, false);
    else if (outcome.kind === 'sent' || !reusable) this.release(session, reusable);
    else void session.reset().then((ok) => this.release(session, ok));
    return outcome;
  }

  private holdUntil(at: number): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const release = () => {
        clearTimeout(timer);
        this.holding.delete(release);
        resolve();
      };
      const timer = setTimeout(release, Math.max(0, at - performance.now()));
      this.holding.add(release);
    });
  }

  /**
   * Ends every session now: sends in flight fail, each classified by how far it got, or as
   * `problem` (a deadline that passed) when given.
   */
  close(problem?: ConnectionProblem): void {
    this.closed = true;
    clearTimeout(this.reopenTimer);
    for (const release of [...this.holding]) release();
    for (const s of [...this.sessions]) (problem ? s.end(problem) : s.close());
    this.sessions.clear();
    this.idle = [];
    for (const w of this.waiting.splice(0)) w(undefined);
  }

  /** Says goodbye (QUIT) on every idle session; call when no send is in flight. */
  quit(): void {
    this.closed = true;
    clearTimeout(this.reopenTimer);
    for (const release of [...this.holding]) release();
    for (const s of this.sessions) s.quit();
    this.sessions.clear();
    this.idle = [];
    for (const w of this.waiting.splice(0)) w(undefined);
  }

  private acquire(): Promise<Session | undefined> {
    if (this.closed) return Promise.resolve(undefined);
    const idle = this.idle.pop();
    if (idle) return Promise.resolve(idle);
    if (this.mayOpen()) return Promise.resolve(this.open());
    const waited = new Promise<Session | undefined>((resolve) => this.waiting.push(resolve));
    this.armReopen();
    return waited;
  }

  private mayOpen(): boolean {
    return this.sessions.size < this.maxSessions && performance.now() >= this.reopenAt;
  }

  private open(): Session {
    const session = new Session(this.server, this.credentials, this.options, (s) => this.forget(s));
    this.sessions.add(session);
    const { onSession } = this.options;
    if (onSession) session.ready.then(() => onSession('opened'), (err: Error) => onSession(sessionFailureClass(session.outcomeOf(err, false))));
    return session;
  }

  /** Sends waiting for a session get new ones while there is room, or when the hold ends. */
  private serveWaiting(): void {
    while (this.waiting.length > 0 && this.mayOpen()) this.waiting.shift()!(this.open());
    this.armReopen();
  }

  private armReopen(): void {
    if (this.reopenTimer || this.closed || this.waiting.length === 0 || this.sessions.size >= this.maxSessions) return;
    const wait = Math.ceil(this.reopenAt - performance.now()) + 1;
    this.reopenTimer = setTimeout(() => {
      this.reopenTimer = undefined;
      this.serveWaiting();
    }, wait);
  }

  private release(session: Session, reusable: boolean): void {
    if (!reusable || session.dead || this.closed || this.sessions.size > this.maxSessions) {
      if (!session.dead) session.close();
      this.forget(session);
      this.serveWaiting();
      return;
    }
    const next = this.waiting.shift();
    if (next) next(session);
    else this.idle.push(session);
  }

  private forget(session: Session): void {
    this.sessions.delete(session);
    this.idle = this.idle.filter((s) => s !== session);
  }
}
