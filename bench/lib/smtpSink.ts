import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, fstatSync, openSync, readSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { cpuSeconds } from './processStats.ts';
import { logger } from './report.ts';

const SINK_PATH = '/usr/sbin/smtp-sink';

const log = logger('smtp-sink');

function run(cmd: string, args: string[], input?: string): number {
  const res = spawnSync(cmd, args, {
    input,
    stdio: [input === undefined ? 'ignore' : 'pipe', 'ignore', 'inherit'],
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  if (res.error) throw res.error;
  return res.status ?? 1;
}

/** Path of smtp-sink, installing Debian's postfix package (which ships it) when it is missing. */
export function ensureSmtpSink(): string {
  const found = spawnSync('sh', ['-c', 'command -v smtp-sink'], { encoding: 'utf8' });
  if (found.status === 0 && found.stdout.trim()) return found.stdout.trim();
  // /usr/sbin is not on every PATH, so the package may be installed yet not found by `command -v`.
  if (existsSync(SINK_PATH)) return SINK_PATH;

  log('not found: installing postfix (needs root and apt)');
  // "No configuration" keeps postinst from writing a main.cf and starting a real MTA on port 25.
  if (run('debconf-set-selections', [], 'postfix postfix/main_mailer_type select No configuration\n') !== 0) {
    throw new Error('debconf-set-selections failed: run the benchmark as root on Debian/Ubuntu');
  }
  const install = ['install', '-y', '--no-install-recommends', 'postfix'];
  if (run('apt-get', install) !== 0) {
    // A fresh machine's package lists may be missing or stale.
    if (run('apt-get', ['update']) !== 0 || run('apt-get', install) !== 0) {
      throw new Error('apt-get install postfix failed: smtp-sink is required for the benchmark');
    }
  }
  if (!existsSync(SINK_PATH)) throw new Error(`postfix installed but ${SINK_PATH} is missing`);
  return SINK_PATH;
}

/** A loopback port nobody listens on right now (the sink may still lose a race for it; start() retries). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (addr && typeof addr === 'object' ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

/** Resolves once the server at the port sends its SMTP greeting. */
function greets(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: '127.0.0.1', port });
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(1000, () => done(false));
    sock.once('error', () => done(false));
    sock.once('data', (chunk) => done(chunk.toString('latin1').startsWith('220')));
  });
}

export interface SmtpSink {
  port: number;
  /** CPU seconds the sink has used so far: what the benchmark's peer costs the machine. */
  cpuSeconds(): number;
  /** Messages the sink has received so far ("." seen), from its -c counters. */
  accepted(): number;
  stop(): Promise<void>;
}

/** The last "mesg=N" in the counter file; the file grows by a line per event, so only its tail is read. */
function lastMessageCount(counterFile: string): number {
  const fd = openSync(counterFile, 'r');
  try {
    const tail = Buffer.alloc(512);
    const size = fstatSync(fd).size;
    const text = tail.toString('latin1', 0, readSync(fd, tail, 0, tail.length, Math.max(0, size - tail.length)));
    const last = text.lastIndexOf('mesg=');
    return last < 0 ? 0 : Number.parseInt(text.slice(last + 5), 10);
  } finally {
    closeSync(fd);
  }
}

/**
 * Starts `smtp-sink -u nobody -c [extraArgs] 127.0.0.1:PORT 1000`. Its -c counters go to a file
 * rather than a pipe: the sink writes them after every message, and reading ~100k updates through a
 * pipe would load the very event loop whose sending rate the benchmark measures.
 */
export async function startSmtpSink(counterFile: string, extraArgs: string[] = []): Promise<SmtpSink> {
  const bin = ensureSmtpSink();
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const out = openSync(counterFile, 'w');
    const child: ChildProcess = spawn(bin, ['-u', 'nobody', '-c', ...extraArgs, `127.0.0.1:${port}`, '1000'], {
      stdio: ['ignore', out, 'pipe'],
    });
    closeSync(out);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    let alive = true;
    void exited.then(() => (alive = false));

    const deadline = Date.now() + 5000;
    let ready = false;
    while (alive && !ready && Date.now() < deadline) {
      ready = await greets(port);
      if (!ready) await new Promise((r) => setTimeout(r, 50));
    }
    if (ready) {
      log(`listening on 127.0.0.1:${port} (pid ${child.pid})`);
      return {
        port,
        accepted: () => lastMessageCount(counterFile),
        cpuSeconds: () => cpuSeconds(child.pid!),
        async stop() {
          if (!alive) return;
          child.kill('SIGTERM');
          await exited;
        },
      };
    }
    child.kill('SIGKILL');
    await exited;
    if (attempt >= 3) throw new Error(`smtp-sink did not start on 127.0.0.1:${port}: ${stderr.trim() || 'no greeting'}`);
    log(`start attempt ${attempt} failed (${stderr.trim() || 'no greeting'}), retrying`);
  }
}
