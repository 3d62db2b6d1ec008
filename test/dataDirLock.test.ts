import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DataDirInUse, lockDataDir } from '../src/db/dataDirLock.ts';

describe('one process per embedded database (the lock beside its data dir)', () => {
  const dir = join(mkdtempSync(join(tmpdir(), 'mailpilot-lock-')), 'pglite');
  const lock = `${dir}.lock`;
  afterEach(() => rmSync(lock, { force: true }));

  it('is taken with this process id, refused while held, and free once released', () => {
    const release = lockDataDir(dir);
    expect(readFileSync(lock, 'utf8')).toBe(`${process.pid}\n`);
    expect(() => lockDataDir(dir)).toThrow(DataDirInUse);
    expect(() => lockDataDir(dir)).toThrow(/open in this process/);
    release();
    expect(existsSync(lock)).toBe(false);
    lockDataDir(dir)();
  });

  it('is refused while another live process holds it, and taken over once that process is gone', async () => {
    const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)']);
    await new Promise((r) => other.once('spawn', r));
    writeFileSync(lock, `${other.pid}\n`);
    expect(() => lockDataDir(dir)).toThrow(`open in process ${other.pid}`);
    other.kill('SIGKILL');
    await new Promise((r) => other.once('exit', r));
    const release = lockDataDir(dir);
    expect(readFileSync(lock, 'utf8')).toBe(`${process.pid}\n`);
    release();
  });

  it('takes over a lock naming this process id that this process never took (a restarted container, pid 1 again)', () => {
    writeFileSync(lock, `${process.pid}\n`);
    const release = lockDataDir(dir);
    expect(() => lockDataDir(dir)).toThrow(DataDirInUse);
    release();
    expect(existsSync(lock)).toBe(false);
  });
});
