import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';

/** The embedded database in `dir` is open in a live process. */
export class DataDirInUse extends Error {}

/** Whether a process with this id is alive (EPERM: alive, someone else's). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Lock files this process holds. A lock naming this process's id that is not among them was left
 * by an earlier process that had the same id (a container restarted: the server is pid 1 again).
 */
const held = new Set<string>();

/**
 * Takes `${dir}.lock`, a file holding this process's id, so that no two processes open one
 * embedded database (PGlite has no lock of its own, and two writers corrupt it) and backup or restore
 * never run under a live server. A lock left by a process that is gone (killed, crashed) is taken
 * over. Throws DataDirInUse naming the holder. Returns the function that releases it.
 */
export function lockDataDir(dir: string): () => void {
  const path = `${dir}.lock`;
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      held.add(path);
      return () => {
        if (!held.delete(path)) return;
        try {
          if (Number(readFileSync(path, 'utf8')) === process.pid) unlinkSync(path);
        } catch {
          // Already gone: nothing to release.
        }
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw err;
    }
    const holder = Number.parseInt(readFileSync(path, 'utf8'), 10);
    const ours = holder === process.pid;
    if (Number.isInteger(holder) && (ours ? held.has(path) : alive(holder))) {
      const who = ours ? 'this process' : `process ${holder}`;
      throw new DataDirInUse(
        `the embedded database in ${dir} is open in ${who} (a running mailpilot serve?): stop it first (if no MailPilot runs, delete ${path})`,
      );
    }
    unlinkSync(path);
  }
}
