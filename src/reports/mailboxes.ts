import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { AppContext } from '../context.ts';
import { leaseMailboxes, releaseMailboxes } from '../db/accountMailboxes.ts';
import { MailboxReader } from './mailboxReader.ts';
import { ThrottledLog } from './throttledLog.ts';

/** How often the process looks for mailboxes to read (and renews its hold on those it reads). */
const REFRESH_MS = 30_000;
/** A process's hold on a mailbox outlives this many missed refreshes; then another process may read it. */
const LEASE_MS = 4 * REFRESH_MS;
/** Mailboxes one process reads at most (one IMAP connection each). */
const MAX_MAILBOXES = 1_000;
/** A change of settings reaches the reader this soon (the account API wakes it). */
const CHANGE_DELAY_MS = 200;

/**
 * Every account mailbox this process reads: one MailboxReader per mailbox it holds the lease on
 * (so two processes never read one mailbox), replaced when its settings change, stopped when it is
 * removed or its account switched off.
 */
export class MailboxReaders {
  readonly owner = `${hostname()}:${process.pid}:mailboxes:${randomBytes(4).toString('hex')}`;
  private readonly readers = new Map<number, MailboxReader>();
  private readonly log: ThrottledLog;
  private timer: NodeJS.Timeout | undefined;
  private soon: NodeJS.Timeout | undefined;
  private refreshing: Promise<void> = Promise.resolve();
  private stopped = false;
  private unsubscribe: (() => void) | undefined;

  constructor(private readonly ctx: AppContext) {
    this.log = new ThrottledLog(ctx.log);
  }

  async start(): Promise<void> {
    // Account changes wake the engine; they may have changed a mailbox too.
    this.unsubscribe = this.ctx.events.on(() => {
      this.soon ??= setTimeout(() => {
        this.soon = undefined;
        void this.refresh();
      }, CHANGE_DELAY_MS);
    }, { type: 'engine.wake' });
    this.timer = setInterval(() => void this.refresh(), REFRESH_MS);
    await this.refresh();
  }

  /** The reader of an account's mailbox in this process, if any. */
  reader(accountId: number): MailboxReader | undefined {
    return this.readers.get(accountId);
  }

  /** Takes and renews leases, then starts, replaces and stops readers to match. */
  refresh(): Promise<void> {
    this.refreshing = this.refreshing.then(() => this.reconcile()).catch((err: unknown) => this.ctx.log.warn({ err }, 'could not look for mailboxes to read'));
    return this.refreshing;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    clearTimeout(this.soon);
    this.unsubscribe?.();
    await this.refreshing;
    await Promise.all([...this.readers.values()].map((r) => r.stop()));
    this.readers.clear();
    await releaseMailboxes(this.ctx.db, this.owner).catch((err: unknown) => this.ctx.log.warn({ err }, 'could not release the mailboxes; their leases expire'));
  }

  private async reconcile(): Promise<void> {
    if (this.stopped) return;
    const now = this.ctx.clock.now();
    const held = await leaseMailboxes(this.ctx.db, this.owner, now, new Date(now.getTime() + LEASE_MS), MAX_MAILBOXES);
    if (this.stopped) return;
    const wanted = new Map(held.map((m) => [m.accountId, m]));
    const stopping: Promise<void>[] = [];
    for (const [accountId, reader] of this.readers) {
      const next = wanted.get(accountId);
      if (next && next.version === reader.settings.version) {
        wanted.delete(accountId);
        continue;
      }
      this.readers.delete(accountId);
      stopping.push(reader.stop());
    }
    await Promise.all(stopping);
    for (const m of wanted.values()) this.readers.set(m.accountId, new MailboxReader(this.ctx, this.log, this.owner, m));
  }
}
