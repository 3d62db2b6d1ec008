import type { ImapFlow } from 'imapflow';
import type { AppContext } from '../context.ts';
import { mailboxPassword, saveMailboxCursor, setMailboxState, type MailboxFence, type MailboxToRead } from '../db/accountMailboxes.ts';
import { accountPassword } from '../db/smtpAccounts.ts';
import { retryTransient } from '../db/transient.ts';
import type { MailboxState } from '../states.ts';
import { takeInMessage } from './reportIntake.ts';
import type { ThrottledLog } from './throttledLog.ts';

/** Bytes of each message fetched (a partial FETCH): the report's fields and returned headers come first. */
export const READ_BYTES = 256 * 1024;
/** Messages fetched per round; the next round starts once these are applied. */
const FETCH_BATCH = 20;
/** Mail that arrived this long before the account was created is never about its sends. */
const SINCE_BEFORE_CREATION_MS = 24 * 60 * 60_000;
/** A look without being told of new mail (IDLE or, on servers without it, imapflow's NOOP polling, tell sooner). */
const POLL_MS = 5 * 60_000;
/** How often a server without IDLE is polled for new mail. */
const NO_IDLE_POLL_MS = 60_000;
/** Quiet this long, the connection waits in IDLE for the server's word of new mail. */
const IDLE_AFTER_MS = 1_000;
/** A message whose send is still being recorded is read again after this, and given up after DEFER_LIMIT_MS. */
const DEFER_RETRY_MS = 30_000;
const DEFER_LIMIT_MS = 10 * 60_000;
/** Back-off after a failed connection, doubled per failure in a row; refused credentials wait longest. */
const RETRY_MS = 30_000;
const MAX_RETRY_MS = 15 * 60_000;
const AUTH_RETRY_MS = 60 * 60_000;
/** A connection that worked and closed is opened again after this. */
const RECONNECT_MS = 5_000;
const CONNECT_TIMEOUT_MS = 15_000;
const SOCKET_TIMEOUT_MS = 5 * 60_000;

type Failure = { state: Exclude<MailboxState, 'ok' | 'unchecked'>; reason: string };

/**
 * Reads one account's mailbox over IMAP (imapflow): opened read-only (nothing in it is changed or
 * marked read), the messages that arrived since the last one read are fetched (the first READ_BYTES
 * of each) and handed to takeInMessage, then it waits for the server's word of new mail (IDLE, or
 * polling where the server has no IDLE). How far it has read is kept in the database, so a restart
 * or another process carries on where it stopped. Connection trouble and refused credentials show
 * on the account (`imap.status`) and are retried with back-off; they never touch the account's
 * SMTP health. No database connection is held while the IMAP server is waited on: fetching and
 * applying take turns.
 */
export class MailboxReader {
  private stopped = false;
  private client: ImapFlow | undefined;
  private wakeUp: (() => void) | undefined;
  private reading: Promise<void> = Promise.resolve();
  private checkQueued = false;
  private readonly deferredSince = new Map<number, number>();
  private cursor: { uidValidity: string | null; lastUid: number | null };
  private readonly done: Promise<void>;
  private readonly fence: MailboxFence;

  constructor(
    private readonly ctx: AppContext,
    private readonly log: ThrottledLog,
    private readonly owner: string,
    readonly settings: MailboxToRead,
  ) {
    this.cursor = { uidValidity: settings.uidValidity, lastUid: settings.lastUid };
    this.fence = { accountId: settings.accountId, owner, version: settings.version };
    this.done = this.run();
  }

  /** Closes the connection and ends the reader. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.client?.close();
    this.wakeUp?.();
    await this.done;
  }

  /** Reads what is new now (also on the server's word of new mail); calls while one waits to start join it. */
  check(): Promise<void> {
    if (this.checkQueued) return this.reading;
    this.checkQueued = true;
    this.reading = this.reading
      .then(() => {
        this.checkQueued = false;
        return this.readNew();
      })
      .catch((err: unknown) => this.onReadError(err));
    return this.reading;
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      let failure: Failure | undefined;
      try {
        // A connection that worked and then closed (servers drop idle ones) is simply opened again.
        if (await this.session()) {
          failures = 0;
          await this.sleep(RECONNECT_MS);
          continue;
        }
      } catch (err) {
        failure = this.describe(err);
      }
      if (this.stopped) break;
      failure ??= { state: 'failing', reason: 'the IMAP server closed the connection before the mailbox was open' };
      failures++;
      this.log.write('info', `imap:${failure.state}`, { accountId: this.settings.accountId, reason: failure.reason }, 'could not read the account mailbox; trying again later');
      await this.setState(failure.state, failure.reason);
      const wait = failure.state === 'auth_failed' ? AUTH_RETRY_MS : Math.min(MAX_RETRY_MS, RETRY_MS * 2 ** (failures - 1));
      await this.sleep(wait);
    }
  }

  /**
   * One connection: open the mailbox, read what is new, then read again whenever told to until it
   * closes. True when the mailbox was open (the connection worked), false when stopped first.
   */
  private async session(): Promise<boolean> {
    const s = this.settings;
    const password = s.passwordEnc === null ? '' : s.passwordIsSmtp ? accountPassword(this.ctx.secrets.secretKey, s.accountId, s.passwordEnc) : mailboxPassword(this.ctx.secrets.secretKey, s.accountId, s.passwordEnc);
    // Loaded on the first mailbox read: a process that reads none does without its ~8 MB of heap.
    const { ImapFlow } = await import('imapflow');
    const client = new ImapFlow({
      host: s.host,
      port: s.port,
      secure: s.security === 'tls',
      doSTARTTLS: s.security === 'starttls' ? true : s.security === 'none' ? false : undefined,
      auth: { user: s.username, pass: password },
      logger: false,
      clientInfo: { name: 'MailPilot' },
      // A hostile server must not cost more than a message's worth of memory, or decompress into more.
      disableCompression: true,
      maxLiteralSize: READ_BYTES + 64 * 1024,
      maxResponseSize: 4 * 1024 * 1024,
      maxLineLength: 1024 * 1024,
      maxResponseTokens: 200_000,
      connectionTimeout: CONNECT_TIMEOUT_MS,
      greetingTimeout: CONNECT_TIMEOUT_MS,
      socketTimeout: SOCKET_TIMEOUT_MS,
      maxIdleTime: NO_IDLE_POLL_MS,
      autoIdleDelay: IDLE_AFTER_MS,
    });
    this.client = client;
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    // Errors also end in 'close'; without a listener an 'error' event would end the process.
    client.on('error', () => undefined);
    try {
      if (this.stopped) return false;
      await client.connect();
      await client.mailboxOpen(s.mailbox, { readOnly: true });
      await this.setState('ok', null);
      client.on('exists', () => void this.check());
      const poll = setInterval(() => void this.check(), POLL_MS);
      try {
        await this.check();
        await closed;
        return true;
      } finally {
        clearInterval(poll);
      }
    } finally {
      client.close();
      this.client = undefined;
    }
  }

  /** Fetches and applies every message that arrived after the last one read, FETCH_BATCH at a time. */
  private async readNew(): Promise<void> {
    const client = this.client;
    const box = client?.mailbox;
    if (!client || !box || this.stopped) return;
    const uidValidity = String(box.uidValidity);
    let lastUid = this.cursor.uidValidity === uidValidity ? this.cursor.lastUid : null;
    // UIDs below the next one known now were all searched (or are older than the account).
    const floor = box.uidNext - 1;
    const found =
      lastUid === null
        ? await client.search({ since: new Date(this.settings.accountCreatedAt.getTime() - SINCE_BEFORE_CREATION_MS) }, { uid: true })
        : await client.search({ uid: `${lastUid + 1}:*` }, { uid: true });
    const uids = (found || []).filter((u) => lastUid === null || u > lastUid).sort((a, b) => a - b);
    // Read up to the first message that must wait (its send is still being recorded), then stop there.
    let waitingAt: number | undefined;
    for (let i = 0; i < uids.length && waitingAt === undefined && !this.stopped; i += FETCH_BATCH) {
      const batch = uids.slice(i, i + FETCH_BATCH);
      const fetched: { uid: number; source: Buffer }[] = [];
      for await (const m of client.fetch(batch.join(','), { uid: true, source: { maxLength: READ_BYTES } }, { uid: true })) {
        if (m.source) fetched.push({ uid: m.uid, source: m.source });
      }
      fetched.sort((a, b) => a.uid - b.uid);
      for (const m of fetched) {
        if (!(await this.takeIn(m.uid, m.source))) {
          waitingAt = m.uid;
          break;
        }
      }
      // A message expunged meanwhile (fetched nothing) counts as read.
      if (waitingAt === undefined) lastUid = batch.at(-1)!;
    }
    if (this.stopped) return;
    lastUid = waitingAt !== undefined ? waitingAt - 1 : Math.max(floor, lastUid ?? floor);
    if (lastUid !== this.cursor.lastUid || uidValidity !== this.cursor.uidValidity) {
      const saved = lastUid;
      await retryTransient(() => saveMailboxCursor(this.ctx.db, this.fence, uidValidity, saved), () => this.stopped);
      this.cursor = { uidValidity, lastUid };
    }
    if (waitingAt !== undefined) setTimeout(() => void this.check(), DEFER_RETRY_MS).unref();
  }

  /** Applies one message; false when it must be read again later (its message's send is being recorded). */
  private async takeIn(uid: number, source: Buffer): Promise<boolean> {
    const s = this.settings;
    const receipt = await retryTransient(
      () => takeInMessage(this.ctx, this.log, source, { source: 'imap', ownerId: s.userId, accountId: s.accountId }),
      () => this.stopped,
    );
    if (receipt !== 'deferred') {
      this.deferredSince.delete(uid);
      return true;
    }
    const since = this.deferredSince.get(uid) ?? Date.now();
    this.deferredSince.set(uid, since);
    if (Date.now() - since < DEFER_LIMIT_MS) return false;
    this.deferredSince.delete(uid);
    this.log.write('warn', 'imap:gave_up', { accountId: s.accountId, uid }, 'gave up on a report whose message stayed in sending');
    return true;
  }

  private onReadError(err: unknown): void {
    if (this.stopped) return;
    this.log.write('warn', 'imap:read', { accountId: this.settings.accountId, err: (err as Error).message }, 'reading the mailbox failed; reconnecting');
    this.client?.close();
  }

  /** What went wrong, in MailPilot's words (the server's own text is never shown). */
  private describe(err: unknown): Failure {
    const e = err as { authenticationFailed?: boolean; code?: string; message?: string; serverResponseCode?: string };
    if (e.authenticationFailed) return { state: 'auth_failed', reason: 'the IMAP server refused the username or password' };
    if (e.serverResponseCode === 'NONEXISTENT') {
      return { state: 'failing', reason: `the IMAP server has no mailbox "${this.settings.mailbox}"` };
    }
    const code = e.code && /^[A-Za-z_]+$/.test(e.code) ? ` (${e.code})` : '';
    if (e.code === 'ENOTFOUND') return { state: 'failing', reason: `the IMAP host "${this.settings.host}" was not found` };
    if (e.code === 'ECONNREFUSED' || e.code === 'CONNECT_TIMEOUT' || e.code === 'ETIMEDOUT' || e.code === 'ECONNRESET') {
      return { state: 'failing', reason: `could not connect to the IMAP server${code}` };
    }
    return { state: 'failing', reason: `reading the mailbox failed${code}` };
  }

  private async setState(state: MailboxState, reason: string | null): Promise<void> {
    await retryTransient(
      () => setMailboxState(this.ctx.db, this.fence, state, reason, this.ctx.clock.now()),
      () => this.stopped,
    ).catch((err: unknown) => this.ctx.log.warn({ err, accountId: this.settings.accountId }, 'could not record the mailbox state'));
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      timer.unref();
      this.wakeUp = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}
