import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';

/** A DNS server on loopback (UDP) answering A and AAAA queries from records the test changes at will, TTL 0. */
export interface DnsServer {
  /** `127.0.0.1:PORT`, as MAILPILOT_DNS_SERVERS takes it. */
  address: string;
  /** Sets the addresses a name resolves to (IPv4 and IPv6 mixed); an empty list removes the name. */
  set(name: string, addresses: string[]): void;
  /** Queries answered, by name. */
  queries: string[];
  close(): Promise<void>;
}

export async function startDnsServer(): Promise<DnsServer> {
  const records = new Map<string, string[]>();
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
    const known = records.get(name);
    const wanted = (known ?? []).filter((a) => (question.type === 'AAAA' ? a.includes(':') : question.type === 'A' && !a.includes(':')));
    const reply = dnsPacket.encode({
      type: 'response',
      id: query.id,
      flags: dnsPacket.AUTHORITATIVE_ANSWER | (known ? 0 : 3), // rcode 3: NXDOMAIN
      questions: [question],
      answers: wanted.map((data) => ({ type: question.type as 'A' | 'AAAA', class: 'IN', name: question.name, ttl: 0, data })),
    });
    socket.send(reply, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return {
    address: `127.0.0.1:${socket.address().port}`,
    set: (name, addresses) => (addresses.length ? records.set(name.toLowerCase(), addresses) : records.delete(name.toLowerCase())),
    queries,
    close: () => new Promise((resolve) => socket.close(() => resolve())),
  };
}
