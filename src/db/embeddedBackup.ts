import { existsSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { lockDataDir } from './dataDirLock.ts';

/** gzip magic: a backup is PGlite's gzipped tarball of its data directory. */
const GZIP_MAGIC = Buffer.from([0x1f, 0x8b]);

/**
 * Saves the embedded database in `dir` to `file` (PGlite's dumpDataDir: a gzipped tar of the data
 * directory). Holds the data dir's lock throughout, so it refuses to run while a server has the
 * database open (DataDirInUse). Refuses to overwrite `file`. Returns the bytes written.
 */
export async function backupEmbedded(dir: string, file: string): Promise<number> {
  if (!existsSync(dir)) throw new Error(`there is no embedded database in ${dir}: check MAILPILOT_DATA_DIR`);
  if (existsSync(file)) throw new Error(`${file} already exists: give a new file name`);
  const unlock = lockDataDir(dir);
  try {
    const { PGlite } = await import('@electric-sql/pglite');
    const db = await PGlite.create(dir);
    let dump: Blob;
    try {
      dump = await db.dumpDataDir('gzip');
    } finally {
      await db.close();
    }
    const bytes = Buffer.from(await dump.arrayBuffer());
    // Written aside, then renamed: a crash mid-write never leaves a truncated file under the name.
    writeFileSync(`${file}.partial`, bytes, { mode: 0o600 });
    renameSync(`${file}.partial`, file);
    return bytes.length;
  } finally {
    unlock();
  }
}

/**
 * Replaces the embedded database in `dir` with the backup in `file`. The backup is loaded into a
 * directory beside it and opened (it must hold MailPilot's schema) before anything is replaced; the
 * database it replaces is kept, renamed, and its path returned (null when there was none). Holds the
 * data dir's lock throughout (DataDirInUse while a server has it open).
 */
export async function restoreEmbedded(dir: string, file: string, now: Date): Promise<string | null> {
  if (!existsSync(file) || !statSync(file).isFile()) throw new Error(`${file} is not a file`);
  const data = readFileSync(file);
  if (!data.subarray(0, 2).equals(GZIP_MAGIC)) throw new Error(`${file} is not a MailPilot backup (made by mailpilot backup)`);
  const unlock = lockDataDir(dir);
  const incoming = `${dir}.restoring`;
  try {
    rmSync(incoming, { recursive: true, force: true });
    const { PGlite } = await import('@electric-sql/pglite');
    try {
      const db = await PGlite.create(incoming, { loadDataDir: new Blob([data]) });
      try {
        await db.query('SELECT max(version) FROM schema_migrations');
      } finally {
        await db.close();
      }
    } catch (err) {
      rmSync(incoming, { recursive: true, force: true });
      throw new Error(`${file} could not be loaded as a MailPilot database (${(err as Error).message})`);
    }
    const previous = existsSync(dir) ? `${dir}.before-restore-${now.toISOString().replace(/[:.]/g, '-')}` : null;
    if (previous) renameSync(dir, previous);
    renameSync(incoming, dir);
    return previous;
  } finally {
    unlock();
  }
}
