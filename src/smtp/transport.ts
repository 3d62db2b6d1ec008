import net from 'node:net';
import { PassThrough } from 'node:stream';
import SMTPConnection from 'nodemailer/lib/smtp-connection/index.js';
import XOAuth2 from 'nodemailer/lib/xoauth2/index.js';
import type { Security } from '../states.ts';
import { classifyError, type SendOutcome, type SmtpFailure } from './classify.ts';
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

const CONNECTION_TIMEOUT_MS = 15_000;
const GREETING_TIMEOUT_MS = 15_000;
const SOCKET_TIMEOUT_MS = 60_000;

type Connection = SMTPConnection & { allowsAuth?: boolean };

function failureOf(err: SMTPConnection.SMTPError | Error, dataSent: boolean): SmtpFailure {
  const e = err as Partial<SMTPConnection.SMTPError>;
  return {
    message: err.message,
    code: e.code,
    responseCode: typeof e.responseCode === 'number' ? e.responseCode : undefined,
    response: e.response,
    command: e.command,
    dataSent,
    token: err instanceof OAuthTokenError ? err.failure : undefined,
  };
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

/** One SMTP connection, opened and authenticated once, then used for one message after another. */
class Session {
  readonly ready: Promise<void>;
  dead = false;
  /** Fails whatever the session is doing when the connection errors or closes under it. */
  private onLoss: ((err: Error) => void) | undefined;
  private readonly conn: Connection;

  constructor(server: ServerSettings, credentials: AccountCredentials, onDead: (s: Session) => void) {
    // Nagle's algorithm plus delayed ACKs stall each message ~40 ms when the process does other
    // I/O between sends (SMTP-FACTS "Measured here"): the socket goes to nodemailer with it off.
    const socket = net.connect({ host: server.host, port: server.port, noDelay: true });
    this.conn = new SMTPConnection({
      host: server.host,
      port: server.port,
      secure: server.security === 'tls',
      requireTLS: server.security === 'starttls',
      ignoreTLS: server.security === 'none',
      connection: socket,
      connectionTimeout: CONNECTION_TIMEOUT_MS,
      greetingTimeout: GREETING_TIMEOUT_MS,
      socketTimeout: SOCKET_TIMEOUT_MS,
      logger: false,
    });
    const lost = (err: Error) => {
      if (!this.dead) {
        this.dead = true;
        onDead(this);
      }
      const fail = this.onLoss;
      this.onLoss = undefined;
      fail?.(err);
    };
    this.conn.on('error', lost);
    this.conn.on('end', () => lost(Object.assign(new Error('connection closed'), { code: 'ECONNECTION', command: 'CONN' })));
    this.ready = new Promise<void>((resolve, reject) => {
      this.onLoss = reject;
      this.conn.connect(() => {
        if (!(credentials.username || credentials.xoauth2) || !this.conn.allowsAuth) {
          this.onLoss = undefined;
          return resolve();
        }
        const auth = credentials.xoauth2 ? xoauth2Login(credentials.xoauth2) : { user: credentials.username!, pass: credentials.password ?? '' };
        this.conn.login(auth, (err) => {
          this.onLoss = undefined;
          if (err) {
            this.close();
            reject(err);
          } else resolve();
        });
      });
    });
    // A failed open is reported by the send that waits on it.
    this.ready.catch(() => undefined);
  }

  /**
   * Sends one message. The body goes through a stream whose end marks the moment the final dot is
   * handed to the connection: a connection lost before it means "not delivered", after it "maybe".
   */
  send(from: string, to: string, raw: string): Promise<{ outcome: SendOutcome; reusable: boolean }> {
    return new Promise((resolve) => {
      let dataSent = false;
      const body = new PassThrough();
      body.once('end', () => (dataSent = true));
      body.end(raw);
      this.onLoss = (err) => resolve({ outcome: classifyError(failureOf(err, dataSent)), reusable: false });
      this.conn.send({ from, to: [to] }, body, (err, info) => {
        if (!this.onLoss) return;
        this.onLoss = undefined;
        if (!err) return resolve({ outcome: { kind: 'sent', response: String(info.response ?? '').slice(0, 500) }, reusable: true });
        resolve({ outcome: classifyError(failureOf(err, dataSent)), reusable: !this.dead });
      });
    });
  }

  /** Clears a rejected transaction (RSET) so the connection can carry the next message. */
  reset(): Promise<boolean> {
    return new Promise((resolve) => {
      this.onLoss = () => resolve(false);
      this.conn.reset((err) => {
        if (!this.onLoss) return;
        this.onLoss = undefined;
        resolve(!err);
      });
    });
  }

  quit(): void {
    this.dead = true;
    this.conn.quit();
  }

  close(): void {
    this.dead = true;
    this.conn.close();
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
  private closed = false;
  /** performance.now() before which no new session opens (see holdNewSessions). */
  private reopenAt = 0;
  private reopenTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly server: ServerSettings,
    private readonly credentials: AccountCredentials,
    private maxSessions: number,
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

  async send(from: string, to: string, raw: string): Promise<SendOutcome> {
    const session = await this.acquire();
    if (!session) return { kind: 'account_throttled', error: 'the account transport was closed', slowDown: false };
    try {
      await session.ready;
    } catch (err) {
      this.release(session, false);
      return classifyError(failureOf(err as Error, false));
    }
    const { outcome, reusable } = await session.send(from, to, raw);
    // A session the server ended (or has no room left on, 452 4.5.3) is closed even if the socket is still up.
    if (outcome.kind === 'session_ended') this.release(session, false);
    else if (outcome.kind === 'sent' || !reusable) this.release(session, reusable);
    else void session.reset().then((ok) => this.release(session, ok));
    return outcome;
  }

  /** Ends every session now: sends in flight fail, each classified by how far it got. */
  close(): void {
    this.closed = true;
    clearTimeout(this.reopenTimer);
    for (const s of this.sessions) s.close();
    this.sessions.clear();
    this.idle = [];
    for (const w of this.waiting.splice(0)) w(undefined);
  }

  /** Says goodbye (QUIT) on every idle session; call when no send is in flight. */
  quit(): void {
    this.closed = true;
    clearTimeout(this.reopenTimer);
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
    const session = new Session(this.server, this.credentials, (s) => this.forget(s));
    this.sessions.add(session);
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
