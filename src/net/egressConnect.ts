import dns from 'node:dns';
import net from 'node:net';
import { hostLiteral, type EgressPolicy } from './egressPolicy.ts';

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** Turns a host name into its addresses. */
export type HostResolver = (name: string) => Promise<ResolvedAddress[]>;

// c-ares per-query timeout and tries when MAILPILOT_DNS_SERVERS is set (the caller bounds the whole).
const DNS_TIMEOUT_MS = 2_000;
const DNS_TRIES = 2;

/**
 * The system's resolver (getaddrinfo: /etc/hosts, then DNS, with its search domains), or, with
 * `servers` (`ip` or `ip:port`, MAILPILOT_DNS_SERVERS), DNS queries for A and AAAA sent to those.
 */
export function hostResolver(servers: readonly string[]): HostResolver {
  if (servers.length === 0) {
    return async (name) => (await dns.promises.lookup(name, { all: true })).map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));
  }
  const resolver = new dns.promises.Resolver({ timeout: DNS_TIMEOUT_MS, tries: DNS_TRIES });
  resolver.setServers([...servers]);
  const none = (err: { code?: string }) => {
    if (err.code === 'ENODATA' || err.code === 'ENOTFOUND') return [] as string[];
    throw err;
  };
  return async (name) => {
    const [v4, v6] = await Promise.all([resolver.resolve4(name).catch(none), resolver.resolve6(name).catch(none)]);
    return [...v4.map((address) => ({ address, family: 4 as const })), ...v6.map((address) => ({ address, family: 6 as const }))];
  };
}

/** Why a connection was not even tried. */
export class EgressRefused extends Error {
  constructor(
    readonly reason: 'denied' | 'unresolved',
    /** The host is an IP literal (not a name that resolved there). */
    readonly literal: boolean,
    message: string,
  ) {
    super(message);
  }
}

/**
 * The addresses of `host` a connection may go to: its own (normalised) when it is an IP literal,
 * else what it resolves to now. Every address must pass the policy: a name with one denied address
 * is refused whole, so a connection never lands on the denied one.
 */
export async function allowedAddresses(host: string, policy: EgressPolicy, resolve: HostResolver): Promise<ResolvedAddress[]> {
  const literal = hostLiteral(host);
  let addresses: ResolvedAddress[];
  if (literal !== undefined) addresses = [{ address: literal, family: net.isIP(literal) === 6 ? 6 : 4 }];
  else {
    addresses = await resolve(host).catch(() => []);
    if (addresses.length === 0) throw new EgressRefused('unresolved', false, `the host name ${host} does not resolve`);
  }
  if (!addresses.every((a) => policy.allows(a.address))) {
    const what = literal !== undefined ? `${host} is an address` : `${host} resolves to an address`;
    throw new EgressRefused(
      'denied',
      literal !== undefined,
      `${what} this installation allows no SMTP connections to (its operator's MAILPILOT_SMTP_DENY / MAILPILOT_SMTP_ALLOW)`,
    );
  }
  return addresses;
}

/**
 * The `host` and `lookup` options (net, tls, http) of a connection to one of `addresses` (already
 * checked, see allowedAddresses): Node asks `lookup` for the name's addresses, and it answers with
 * the checked ones, so nothing is resolved again; a literal Node does not look up. TLS still sends
 * SNI and checks the certificate for `host`.
 */
export function checkedTarget(host: string, addresses: ResolvedAddress[]): { host: string; lookup: net.LookupFunction } {
  const [first] = addresses;
  const lookup = (_name: string, opts: { all?: boolean }, cb: (...args: unknown[]) => void) => {
    if (opts.all) cb(null, addresses);
    else cb(null, first!.address, first!.family);
  };
  return { host: hostLiteral(host) ?? host, lookup: lookup as never };
}

/**
 * A TCP connection to one of `addresses` (already checked), trying them as Node does (happy
 * eyeballs) without resolving anything again: what was checked is what is connected to.
 */
export function connectChecked(host: string, addresses: ResolvedAddress[], port: number): net.Socket {
  return net.connect({ ...checkedTarget(host, addresses), port, noDelay: true });
}
