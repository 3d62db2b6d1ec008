import dns from 'node:dns';

/**
 * Whether a domain can receive mail, answered from DNS through one resolver per process with a
 * cache. RFC 5321 §5.1: mail goes to the domain's MX hosts, or, without MX records, to its own
 * address (A/AAAA); a "null MX" (RFC 7505: one MX of preference 0 and host ".") says it takes none.
 * A server that fails, refuses or stays silent gives `unknown`, never an error.
 */
export const MAIL_DOMAIN_ANSWERS = ['mx', 'address', 'none', 'unknown'] as const;
export type MailDomain = (typeof MAIL_DOMAIN_ANSWERS)[number];

/** c-ares per-query timeout and tries; a lookup (MX, then A and AAAA) is also cut at LOOKUP_TIMEOUT_MS. */
const QUERY_TIMEOUT_MS = 1_500;
const QUERY_TRIES = 2;
export const LOOKUP_TIMEOUT_MS = 4_000;
/** How long an answer is kept: found or absent for an hour, `unknown` (a failing server) for a minute. */
const KNOWN_TTL_MS = 60 * 60_000;
const UNKNOWN_TTL_MS = 60_000;
/** Domains kept at most; the oldest entry goes first. */
const MAX_CACHED = 100_000;
/** Lookups in flight at once, and waiting for a slot: past that a domain is `unknown` at once. */
const MAX_CONCURRENT = 16;
const MAX_WAITING = 10_000;

// Answers meaning "no such name" or "no such record", as opposed to a failing or silent server.
const ABSENT = new Set<string>([dns.NODATA, dns.NOTFOUND]);

export class MailDomains {
  private readonly resolver: dns.promises.Resolver;
  private readonly cache = new Map<string, { answer: MailDomain; until: number }>();
  private readonly inFlight = new Map<string, Promise<MailDomain>>();
  private readonly waiting: (() => void)[] = [];
  private running = 0;

  /** `servers`: `ip` or `ip:port` (MAILPILOT_DNS_SERVERS); empty = the system's. `now`: the app clock, in ms. */
  constructor(servers: string[], private readonly now: () => number) {
    this.resolver = new dns.promises.Resolver({ timeout: QUERY_TIMEOUT_MS, tries: QUERY_TRIES });
    if (servers.length) this.resolver.setServers(servers);
  }

  /** The cached answer for a (lower-case) domain, or undefined when it must be looked up. */
  cached(domain: string): MailDomain | undefined {
    const hit = this.cache.get(domain);
    if (!hit) return undefined;
    if (hit.until > this.now()) return hit.answer;
    this.cache.delete(domain);
    return undefined;
  }

  /** Looks a (lower-case) domain up, once however many ask at the same time; never rejects. */
  lookup(domain: string): Promise<MailDomain> {
    const hit = this.cached(domain);
    if (hit) return Promise.resolve(hit);
    const pending = this.inFlight.get(domain);
    if (pending) return pending;
    if (this.running >= MAX_CONCURRENT && this.waiting.length >= MAX_WAITING) return Promise.resolve('unknown');
    const answer = this.whenSlotFree()
      .then(() => withTimeout(this.resolve(domain), LOOKUP_TIMEOUT_MS))
      .catch((): MailDomain => 'unknown')
      .then((a) => {
        this.remember(domain, a);
        return a;
      })
      .finally(() => {
        this.inFlight.delete(domain);
        this.running--;
        this.waiting.shift()?.();
      });
    this.inFlight.set(domain, answer);
    return answer;
  }

  private whenSlotFree(): Promise<void> {
    if (this.running < MAX_CONCURRENT) {
      this.running++;
      return Promise.resolve();
    }
    return new Promise((resolve) =>
      this.waiting.push(() => {
        this.running++;
        resolve();
      }),
    );
  }

  private remember(domain: string, answer: MailDomain): void {
    if (this.cache.size >= MAX_CACHED) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(domain, { answer, until: this.now() + (answer === 'unknown' ? UNKNOWN_TTL_MS : KNOWN_TTL_MS) });
  }

  private async resolve(domain: string): Promise<MailDomain> {
    try {
      const mx = await this.resolver.resolveMx(domain);
      if (mx.length === 1 && (mx[0]!.exchange === '' || mx[0]!.exchange === '.') && mx[0]!.priority === 0) return 'none';
      if (mx.length > 0) return 'mx';
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === dns.NOTFOUND) return 'none';
      if (!ABSENT.has(code!)) return 'unknown';
    }
    const addresses = await Promise.allSettled([this.resolver.resolve4(domain), this.resolver.resolve6(domain)]);
    if (addresses.some((a) => a.status === 'fulfilled' && a.value.length > 0)) return 'address';
    const absent = addresses.every((a) => a.status === 'fulfilled' || ABSENT.has((a.reason as NodeJS.ErrnoException).code!));
    return absent ? 'none' : 'unknown';
  }
}

function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('DNS lookup timed out')), ms);
    timer.unref();
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}
