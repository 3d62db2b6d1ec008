import ipaddr from 'ipaddr.js';

/**
 * Where connections to hosts chosen by users (SMTP servers, OAuth2 token endpoints) may go: the
 * operator's `MAILPILOT_SMTP_DENY` and `MAILPILOT_SMTP_ALLOW` (API.md "Operators"), checked on each
 * resolved address just before connecting.
 *
 * Each list holds networks (CIDR), single addresses, or the words below. An address in no listed
 * network is allowed. One that is in networks of both lists is decided by the most specific of them
 * (the longest prefix), ALLOW winning a tie, so `DENY=private` with `ALLOW=10.1.2.3` opens one relay,
 * and `ALLOW=private` does not open the cloud metadata address inside it. `link-local` is always
 * denied unless ALLOW names it (or a network inside it).
 */

type Address = ipaddr.IPv4 | ipaddr.IPv6;
type Network = [Address, number];

const cidr = (s: string): Network => ipaddr.parseCIDR(s);

/**
 * The words: loopback (0.0.0.0/8 and :: too, since connecting to them reaches this host on Linux),
 * private (RFC 1918, RFC 6598 shared space, IPv6 unique local), link-local (RFC 3927, RFC 4291, and
 * the cloud metadata addresses outside those ranges: AWS fd00:ec2::254, Alibaba 100.100.100.200).
 */
export const NETWORK_WORDS = {
  loopback: ['127.0.0.0/8', '0.0.0.0/8', '::1/128', '::/128'],
  private: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', 'fc00::/7'],
  'link-local': ['169.254.0.0/16', 'fe80::/10', 'fd00:ec2::254/128', '100.100.100.200/32'],
} as const satisfies Record<string, readonly string[]>;

export type NetworkWord = keyof typeof NETWORK_WORDS;

const isWord = (s: string): s is NetworkWord => Object.hasOwn(NETWORK_WORDS, s);

/** What the operator did not say: link-local (cloud metadata) denied, everything else allowed. */
const DEFAULT_DENY: NetworkWord[] = ['link-local'];

// The NAT64 well-known prefix (RFC 6052) carries an IPv4 destination in its last 32 bits.
const NAT64 = cidr('64:ff9b::/96');

/**
 * The address a host names when it is an IP literal in any form the C library accepts
 * (`2130706433`, `0x7f000001`, `0177.0.0.1`, `127.1`, `::ffff:127.0.0.1` are all 127.0.0.1),
 * normalised; undefined for a host name.
 */
export function hostLiteral(host: string): string | undefined {
  if (!ipaddr.isValid(host)) return undefined;
  return ipaddr.process(host).toString();
}

/** The addresses an address stands for: itself, and the IPv4 one inside an IPv4-mapped or NAT64 one. */
function meanings(address: string): Address[] {
  const parsed = ipaddr.process(address);
  if (parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).match(NAT64)) {
    const bytes = parsed.toByteArray().slice(12);
    return [parsed, ipaddr.fromByteArray(bytes)];
  }
  return [parsed];
}

function parseEntry(entry: string, variable: string): Network[] {
  const word = entry.toLowerCase();
  if (isWord(word)) return NETWORK_WORDS[word].map(cidr);
  try {
    if (entry.includes('/')) return [ipaddr.parseCIDR(entry)];
    const one = ipaddr.process(entry);
    return [[one, one.kind() === 'ipv4' ? 32 : 128]];
  } catch {
    throw new Error(
      `${variable}: "${entry}" is not a network: give CIDR networks (10.0.0.0/8, fd00::/8), addresses, or the words loopback, private, link-local, separated by commas`,
    );
  }
}

function parseList(value: string | undefined, variable: string): Network[] {
  return (value ?? '')
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean)
    .flatMap((e) => parseEntry(e, variable));
}

function within(a: Address, [net, bits]: Network): boolean {
  if (a.kind() === 'ipv4') return net.kind() === 'ipv4' && (a as ipaddr.IPv4).match(net as ipaddr.IPv4, bits);
  return net.kind() === 'ipv6' && (a as ipaddr.IPv6).match(net as ipaddr.IPv6, bits);
}

/** The longest prefix among `networks` that contains `address`, or -1. */
function longestMatch(address: Address, networks: Network[]): number {
  let best = -1;
  for (const network of networks) if (network[1] > best && within(address, network)) best = network[1];
  return best;
}

export class EgressPolicy {
  private constructor(
    private readonly deny: Network[],
    private readonly allow: Network[],
  ) {}

  /**
   * From `MAILPILOT_SMTP_DENY` and `MAILPILOT_SMTP_ALLOW` (comma-separated). Throws an error that
   * names the variable when an entry is neither a network nor a word.
   */
  static fromEnv(env: { MAILPILOT_SMTP_DENY?: string; MAILPILOT_SMTP_ALLOW?: string }): EgressPolicy {
    const deny = [...DEFAULT_DENY.flatMap((w) => NETWORK_WORDS[w].map(cidr)), ...parseList(env.MAILPILOT_SMTP_DENY, 'MAILPILOT_SMTP_DENY')];
    return new EgressPolicy(deny, parseList(env.MAILPILOT_SMTP_ALLOW, 'MAILPILOT_SMTP_ALLOW'));
  }

  /** Whether a connection to this IP address (any form, IPv4-mapped included) may be opened. */
  allows(address: string): boolean {
    return meanings(address).every((a) => {
      const denied = longestMatch(a, this.deny);
      return denied < 0 || longestMatch(a, this.allow) >= denied;
    });
  }

  /**
   * Whether `host` is an IP literal this policy refuses: what the API can turn down when a host is
   * given. A name is checked only when it is resolved, each time a connection is made.
   */
  refusesLiteral(host: string): boolean {
    const literal = hostLiteral(host);
    return literal !== undefined && !this.allows(literal);
  }
}

const LOOPBACK = NETWORK_WORDS.loopback.map(cidr);

/** Whether an IP address is this host's own (the `loopback` word). */
export function isLoopback(address: string): boolean {
  return meanings(address).every((a) => longestMatch(a, LOOPBACK) >= 0);
}

