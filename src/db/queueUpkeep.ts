import type { Database } from './database.ts';

/** Each message is rewritten twice (claimed, then its outcome): vacuum after this many messages. */
const MESSAGES_BETWEEN_VACUUMS = 50_000;

/**
 * Vacuums the queue tables when nothing else does: the embedded database has no autovacuum, and a
 * server may run with it off. Unvacuumed, every claim and outcome leaves a dead row version and
 * dead index entries behind, so the table grows ~3x and the hot index scans slow down as a big
 * campaign goes on. SKIP_LOCKED: when another process is vacuuming already, this one need not.
 */
export class QueueUpkeep {
  private sinceVacuum = 0;
  private vacuuming = false;
  private readonly needed: Promise<boolean>;

  constructor(
    private readonly db: Database,
    private readonly onError: (err: unknown) => void,
  ) {
    this.needed =
      db.kind === 'pglite'
        ? Promise.resolve(true)
        : db.query<{ on: boolean }>(`SELECT current_setting('autovacuum') = 'on' AS on`).then(
            ([row]) => !row?.on,
            () => false,
          );
  }

  /** Notes messages that reached an outcome; vacuums once enough have. */
  messagesDone(count: number): void {
    this.sinceVacuum += count;
    if (this.sinceVacuum < MESSAGES_BETWEEN_VACUUMS || this.vacuuming) return;
    this.vacuuming = true;
    this.sinceVacuum = 0;
    void this.vacuum()
      .catch(this.onError)
      .finally(() => (this.vacuuming = false));
  }

  private async vacuum(): Promise<void> {
    if (!(await this.needed)) return;
    await this.db.exec('VACUUM (SKIP_LOCKED, ANALYZE) messages, campaigns, smtp_usage');
  }
}
