import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImapFlow } from 'imapflow';
import { ensureDebianProgram } from './debianPackage.ts';

/** Debian's Dovecot IMAP server, run by the tests on a loopback port. */
export const DOVECOT_PATH = '/usr/sbin/dovecot';
const START_TIMEOUT_MS = 15_000;

/**
 * Returns Dovecot's executable, installing `dovecot-imapd` when it is missing. Undefined, with a
 * notice on the console, only when it cannot be installed (no apt-get, no root, no network).
 */
export function ensureDovecot(): string | undefined {
  return ensureDebianProgram({ program: DOVECOT_PATH, packages: ['dovecot-imapd'], skipped: 'the IMAP tests' });
}

export interface Dovecot {
  host: string;
  port: number;
  /** Appends a raw message to a user's INBOX over IMAP, with this internal date. */
  append(user: string, raw: string, date: Date): Promise<void>;
  /** The flags each message of a user's INBOX has kept (to check nothing was changed; \Recent is per session). */
  flags(user: string): Promise<string[][]>;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, child: ChildProcess, log: string): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (child.exitCode !== null || Date.now() > deadline) {
      throw new Error(`Dovecot did not start: ${existsSync(log) ? readFileSync(log, 'utf8') : 'no log'}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * A Dovecot of its own: a throw-away mail directory (Maildir per user), a static password file
 * (`users`: name → password), plaintext IMAP on a free loopback port, IDLE as Dovecot offers it.
 */
export async function startDovecot(executable: string, users: Record<string, string>): Promise<Dovecot> {
  const dir = mkdtempSync(join(tmpdir(), 'mailpilot-dovecot-'));
  // Dovecot's processes that serve a user run as nobody and must reach the mail directory.
  chmodSync(dir, 0o755);
  for (const sub of ['run', 'state', 'mail']) mkdirSync(join(dir, sub));
  // Mail is stored as nobody: Dovecot refuses to store it as root.
  const uid = Number(execFileSync('id', ['-u', 'nobody']).toString().trim());
  const gid = Number(execFileSync('id', ['-g', 'nobody']).toString().trim());
  chownSync(join(dir, 'mail'), uid, gid);
  writeFileSync(join(dir, 'passwd'), Object.entries(users).map(([u, p]) => `${u}:{PLAIN}${p}::::::\n`).join(''));
  const port = await freePort();
  const log = join(dir, 'dovecot.log');
  const conf = join(dir, 'dovecot.conf');
  writeFileSync(
    conf,
    `protocols = imap
listen = 127.0.0.1
base_dir = ${dir}/run
state_dir = ${dir}/state
instance_name = mailpilot-test-${port}
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:${dir}/mail/%u
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u ${dir}/passwd
}
userdb {
  driver = static
  args = uid=${uid} gid=${gid} home=${dir}/mail/%u
}
service imap-login {
  inet_listener imap {
    port = ${port}
  }
  inet_listener imaps {
    port = 0
  }
}
log_path = ${log}
`,
  );
  const child = spawn(executable, ['-F', '-c', conf], { stdio: 'ignore' });
  await waitForPort(port, child, log);

  const client = async <T>(user: string, fn: (c: ImapFlow) => Promise<T>): Promise<T> => {
    const c = new ImapFlow({ host: '127.0.0.1', port, secure: false, doSTARTTLS: false, auth: { user, pass: users[user]! }, logger: false });
    await c.connect();
    try {
      return await fn(c);
    } finally {
      await c.logout();
    }
  };

  return {
    host: '127.0.0.1',
    port,
    append: (user, raw, date) => client(user, async (c) => void (await c.append('INBOX', raw, [], date))),
    flags: (user) =>
      client(user, async (c) => {
        await c.mailboxOpen('INBOX', { readOnly: true });
        if (c.mailbox && c.mailbox.exists === 0) return [];
        const out: string[][] = [];
        for await (const m of c.fetch('1:*', { flags: true })) out.push([...(m.flags ?? [])].filter((f) => f !== '\\Recent').sort());
        return out;
      }),
    async stop() {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
