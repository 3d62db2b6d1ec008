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
      return () => {
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
    if (Number.isInteger(holder) && alive(holder)) {
      const who = holder === process.pid ? 'this process' : `process ${holder}`;
      throw new DataDirInUse(
        `the embedded database in ${dir} is open in ${who} (a running mailpilot serve?): stop it first (if no MailPilot runs, delete ${path})`,
      );
    }
    unlinkSync(path);
  }
}
