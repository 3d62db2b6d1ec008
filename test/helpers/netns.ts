import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { networkInterfaces } from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/**
 * An SMTP listener on an address that is not this host's loopback: inside a network namespace made
 * for the test, reached over a veth pair on a /30 of 198.18.0.0/15 (RFC 2544, for tests), or, where
 * no namespace can be made (no CAP_NET_ADMIN), on this host's own non-loopback address. It offers
 * AUTH without TLS and records every AUTH it is given.
 */
export interface RemoteAuthListener {
  host: string;
  port: number;
  auths: { username: string; password: string }[];
  messages: number;
  close(): Promise<void>;
}

/** This host's first IPv4 address that is not loopback (an address of its own network card). */
function ownAddress(): string | undefined {
  for (const addresses of Object.values(networkInterfaces())) {
    const found = addresses?.find((a) => a.family === 'IPv4' && !a.internal);
    if (found) return found.address;
  }
  return undefined;
}

const LISTENER = fileURLToPath(new URL('./authListener.mjs', import.meta.url));

function ip(args: string[]): void {
  execFileSync('ip', args, { stdio: 'pipe', timeout: 10_000 });
}

/** Undefined, with a notice on the console, when neither a network namespace nor an address of this host serves. */
export async function startRemoteAuthListener(): Promise<RemoteAuthListener | undefined> {
  const id = randomBytes(3).toString('hex');
  const ns = `mp-auth-${id}`;
  const [outer, inner] = [`mpa${id}o`, `mpa${id}i`];
  const subnet = randomBytes(2);
  const base = `198.${18 + (subnet[0]! & 1)}.${subnet[1]}`;
  const third = ((subnet[0]! >> 1) & 63) * 4;
  const [ours, theirs] = [`${base}.${third + 1}`, `${base}.${third + 2}`];
  const remove = () => {
    try {
      ip(['netns', 'del', ns]);
    } catch {
      // never made
    }
  };
  let child: ChildProcess;
  let host = theirs;
  try {
    ip(['netns', 'add', ns]);
    ip(['link', 'add', outer, 'type', 'veth', 'peer', 'name', inner]);
    ip(['link', 'set', inner, 'netns', ns]);
    ip(['addr', 'add', `${ours}/30`, 'dev', outer]);
    ip(['link', 'set', outer, 'up']);
    ip(['-n', ns, 'addr', 'add', `${theirs}/30`, 'dev', inner]);
    ip(['-n', ns, 'link', 'set', inner, 'up']);
    ip(['-n', ns, 'link', 'set', 'lo', 'up']);
    child = spawn('ip', ['netns', 'exec', ns, process.execPath, LISTENER, theirs, '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  } catch (err) {
    remove();
    const own = ownAddress();
    if (!own) {
      console.warn(`NOTICE: the tests that need a non-loopback SMTP peer FAIL: no network namespace could be made (${(err as Error).message.split('\n')[0]}) and this host has no non-loopback IPv4 address.`);
      return undefined;
    }
    child = spawn(process.execPath, [LISTENER, own, '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
    host = own;
  }
  const listener: RemoteAuthListener = {
    host,
    port: 0,
    auths: [],
    messages: 0,
    close: async () => {
      child.kill();
      await new Promise((r) => child.once('exit', r));
      remove();
    },
  };
  const ready = new Promise<number>((resolve, reject) => {
    child.once('exit', () => reject(new Error('the listener in the namespace exited')));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const event = JSON.parse(line) as { ready?: number; auth?: { username: string; password: string }; message?: true };
      if (event.ready) resolve(event.ready);
      if (event.auth) listener.auths.push(event.auth);
      if (event.message) listener.messages++;
    });
  });
  try {
    listener.port = await ready;
  } catch (err) {
    remove();
    console.warn(`NOTICE: the tests that need a non-loopback SMTP peer FAIL: ${(err as Error).message}.`);
    return undefined;
  }
  return listener;
}
