import net from 'node:net';

/**
 * Peers that are not (or not quite) SMTP servers, on a loopback port:
 * - `silent`: accepts the connection and never says a word;
 * - `trickle`: greets like an SMTP server, then answers EHLO one continuation line every
 *   `intervalMs`, never finishing the reply;
 * - `talker`: speaks another protocol at once (a NATS-like INFO line carrying `token`).
 */
export type TarpitKind = 'silent' | 'trickle' | 'talker';

export interface Tarpit {
  port: number;
  /** Connections accepted so far, and those still open. */
  accepted: number;
  open: number;
  close(): Promise<void>;
}

export async function startTarpit(
  kind: TarpitKind,
  opts: { intervalMs?: number; token?: string; host?: string; port?: number } = {},
): Promise<Tarpit> {
  const sockets = new Set<net.Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const tarpit: Tarpit = { port: 0, accepted: 0, open: 0, close: async () => undefined };
  const server = net.createServer((socket) => {
    tarpit.accepted++;
    tarpit.open++;
    sockets.add(socket);
    socket.on('error', () => undefined);
    socket.on('close', () => {
      tarpit.open--;
      sockets.delete(socket);
    });
    if (kind === 'talker') {
      socket.write(`INFO {"server_id":"NDZQ","version":"2.10.4","auth_required":true,"token":"${opts.token ?? ''}"}\r\n`);
    } else if (kind === 'trickle') {
      socket.write('220 tarpit.test ESMTP\r\n');
      socket.once('data', () => {
        const timer = setInterval(() => socket.write('250-still thinking\r\n'), opts.intervalMs ?? 1000);
        timers.add(timer);
        socket.on('close', () => clearInterval(timer));
      });
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', resolve);
  });
  tarpit.port = (server.address() as net.AddressInfo).port;
  tarpit.close = () =>
    new Promise((resolve) => {
      for (const t of timers) clearInterval(t);
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  return tarpit;
}

/** A loopback port nothing listens on (taken, then freed). */
export async function closedPort(host = '127.0.0.1'): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}
