import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';

/**
 * A DNS server on loopback (UDP) answering A, AAAA and MX queries from records the test changes at
 * will, TTL 0; a name it does not know is NXDOMAIN. `silent`: it reads queries and never answers
 * (a dead server, for timeouts).
 */
export interface DnsServer {
  /** `127.0.0.1:PORT`, as MAILPILOT_DNS_SERVERS takes it. */
  address: string;
  /** Sets the addresses a name resolves to (IPv4 and IPv6 mixed); an empty list removes the name. */
  set(name: string, addresses: string[]): void;
  /** Sets the MX hosts of a name (the name then exists; "." is a null MX); an empty list removes them. */
  setMx(name: string, exchanges: string[]): void;
  /** Queries answered (or, silent, received), by name. */
  queries: string[];
  close(): Promise<void>;
}

export async function startDnsServer(opts: { silent?: boolean } = {}): Promise<DnsServer> {
  const records = new Map<string, string[]>();
  const mx = new Map<string, string[]>();
  const queries: string[] = [];
  const socket = dgram.createSocket('udp4');
  socket.on('message', (msg, rinfo) => {
    let query: dnsPacket.Packet;
    try {
      query = dnsPacket.decode(msg);
    } catch {
      return;
    }
    const question = query.questions?.[0];
    if (!question) return;
    const name = question.name.toLowerCase();
    queries.push(name);
    if (opts.silent) return;
    const known = records.has(name) || mx.has(name);
    let answers: dnsPacket.Answer[];
    if (question.type === 'MX') {
      // "." is a null MX (RFC 7505), which has preference 0.
      answers = (mx.get(name) ?? []).map((exchange, i) => ({
        type: 'MX',
        class: 'IN',
        name: question.name,
        ttl: 0,
        data: { preference: exchange === '.' ? 0 : 10 * (i + 1), exchange },
      }));
    } else {
      const wanted = (records.get(name) ?? []).filter((a) => (question.type === 'AAAA' ? a.includes(':') : question.type === 'A' && !a.includes(':')));
      answers = wanted.map((data) => ({ type: question.type as 'A' | 'AAAA', class: 'IN', name: question.name, ttl: 0, data }));
    }
    const reply = dnsPacket.encode({
      type: 'response',
      id: query.id,
      flags: dnsPacket.AUTHORITATIVE_ANSWER | (known ? 0 : 3), // rcode 3: NXDOMAIN
      questions: [question],
      answers,
    });
    socket.send(reply, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const put = (map: Map<string, string[]>, name: string, values: string[]) =>
    values.length ? map.set(name.toLowerCase(), values) : map.delete(name.toLowerCase());
  return {
    address: `127.0.0.1:${socket.address().port}`,
    set: (name, addresses) => put(records, name, addresses),
    setMx: (name, exchanges) => put(mx, name, exchanges),
    queries,
    close: () => new Promise((resolve) => socket.close(() => resolve())),
  };
}
