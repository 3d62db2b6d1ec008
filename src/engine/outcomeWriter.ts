import { completeIfFinished } from '../campaigns/lifecycle.ts';
import type { AppContext } from '../context.ts';
import type { Queryable } from '../db/database.ts';
import { recordOutcomes, type AccountOutcomeRow } from '../db/messages.ts';
import type { QueueUpkeep } from '../db/queueUpkeep.ts';
import { retryTransient } from '../db/transient.ts';
import { ProgressAnnouncer } from './progressAnnouncer.ts';

/** No statement carries more rows than this. */
const MAX_ROWS = 2_000;
/**
 * Rows handed over and not yet landed past which the workers start no new sends (see `full`).
 * A few statements' worth: enough to keep the writer busy, little enough to stay in memory.
 */
const MAX_BACKLOG = 4 * MAX_ROWS;

interface Submission {
  rows: AccountOutcomeRow[];
  giveUp: () => boolean;
  /** performance.now() when the rows were handed over. */
  handedAt: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/**
 * The outcome writes of all the process's account workers, grouped into one statement at a time
 * (group commit) on a connection of their own. With a thousand accounts each sending a message
 * every few seconds, per-worker writes would be thousands of one-row statements a second; grouped,
 * the statement count stays flat however many accounts are at work, and the rows per statement
 * grow instead. Continuous, with no timer: the next statement starts as soon as the previous one
 * returns, carrying every submission that arrived meanwhile, so an outcome waits at most one
 * statement before its own starts (the crash bound, outcomeRecorder.ts, counts on that).
 *
 * It is also the process's brake: sending outran writing when the process ran out of CPU, and the
 * unwritten outcomes piled up until the heap did. Past MAX_BACKLOG rows the workers wait (`full`).
 */
export class OutcomeWriter {
  private pending: Submission[] = [];
  private pendingRows = 0;
  private writingRows = 0;
  private readonly waiting = new Set<() => void>();
  private writing = false;
  private readonly progress: ProgressAnnouncer;

  constructor(
    private readonly ctx: AppContext,
    private readonly db: Queryable,
    private readonly owner: string,
    private readonly upkeep: QueueUpkeep,
  ) {
    this.progress = new ProgressAnnouncer(ctx.events);
  }

  /** Whether workers should start no new sends until `onRoom` calls them back. */
  get full(): boolean {
    return this.pendingRows + this.writingRows >= MAX_BACKLOG;
  }

  /** Calls `wake` once the backlog is below its bound (each distinct function once). */
  onRoom(wake: () => void): void {
    if (this.full) this.waiting.add(wake);
    else wake();
  }

  /**
   * Resolves once the rows have landed (or were fenced off: a lost lease). Rejects when the
   * database kept failing until `giveUp()` said to stop: the rows then stay 'sending'.
   */
  write(rows: AccountOutcomeRow[], giveUp: () => boolean): Promise<void> {
    if (rows.length === 0) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.pending.push({ rows, giveUp, handedAt: performance.now(), resolve, reject });
      this.pendingRows += rows.length;
      this.schedule();
    });
  }

  private schedule(): void {
    if (!this.writing && this.pending.length > 0) void this.writeNext();
  }

  private async writeNext(): Promise<void> {
    this.writing = true;
    const group: Submission[] = [];
    let rows = 0;
    while (this.pending.length > 0 && (group.length === 0 || rows + this.pending[0]!.rows.length <= MAX_ROWS)) {
      const s = this.pending.shift()!;
      group.push(s);
      rows += s.rows.length;
    }
    this.pendingRows -= rows;
    this.writingRows = rows;
    let finished: number[] = [];
    try {
      // Repeating the statement is safe: it touches only rows still 'sending', so nothing counts twice.
      const counters = await retryTransient(
        () => recordOutcomes(this.db, this.owner, group.flatMap((s) => s.rows)),
        () => group.every((s) => s.giveUp()),
      );
      for (const s of group) s.resolve();
      this.ctx.events.emit({ type: 'engine.outcomes_written', userId: 0, rows, lagMs: performance.now() - group[0]!.handedAt });
      this.upkeep.messagesDone(rows);
      this.progress.changed(counters);
      finished = counters.filter((c) => c.sent + c.failed + c.suppressed + c.cancelled >= c.total).map((c) => c.id);
    } catch (err) {
      for (const s of group) s.reject(err);
    } finally {
      this.writingRows = 0;
      // The next statement starts once the workers whose rows just landed have handed over what
      // they recorded meanwhile (promise continuations, within this turn): it then carries those too,
      // where starting at once would leave them for the statement after.
      setImmediate(() => {
        this.writing = false;
        this.schedule();
      });
      if (!this.full) {
        for (const wake of this.waiting) wake();
        this.waiting.clear();
      }
    }
    // The scheduler also completes finished campaigns on every pass, so a failure here only delays it.
    if (finished.length > 0) {
      await completeIfFinished(this.ctx, finished).catch((err) => this.ctx.log.warn({ err }, 'could not complete finished campaigns'));
    }
  }
}
