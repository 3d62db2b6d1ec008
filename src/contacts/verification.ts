import { createRequire } from 'node:module';
import rolePrefixes from 'role-based-email-addresses';
import { checkEmail } from '../campaigns/emailAddress.ts';
import type { MailDomain, MailDomains } from './mailDomains.ts';

/**
 * What can be known about an address before sending to it, without sending: its syntax, whether
 * its domain takes mail (mailDomains.ts), whether the domain hands out disposable addresses (the
 * `mailchecker` package's list) and whether it names a role rather than a person (RFC 2142 names
 * and others, from the `role-based-email-addresses` package). No SMTP conversation: providers
 * treat probing RCPT TO as abuse and the big ones accept every address at that stage anyway.
 *
 * Status: `undeliverable` (bad syntax, or a domain that takes no mail), `risky` (disposable or role),
 * `unknown` (DNS did not answer in time), else `deliverable`.
 */

export const VERIFICATION_STATUSES = ['deliverable', 'undeliverable', 'risky', 'unknown'] as const;
export type VerificationStatus = (typeof VERIFICATION_STATUSES)[number];

/** Why, in the order they are checked; an undeliverable status comes from the first two. */
export const VERIFICATION_REASONS = ['invalid_syntax', 'no_mail_domain', 'dns_unanswered', 'disposable_domain', 'role_address'] as const;
export type VerificationReason = (typeof VERIFICATION_REASONS)[number];

/** A contact's stored verification (contacts.verification). Suppression is not stored: it is read live. */
export interface Verification {
  status: VerificationStatus;
  reasons: VerificationReason[];
  checks: { syntax: boolean; domain: MailDomain; disposable: boolean; role: boolean };
  checkedAt: string;
}

let disposableList: Set<string> | undefined;
/** mailchecker's list, loaded on the first check: a process that verifies nothing does without its ~7 MB of heap. */
function disposableDomains(): Set<string> {
  disposableList ??= (createRequire(import.meta.url)('mailchecker') as { blacklist(): Set<string> }).blacklist();
  return disposableList;
}
/** Distinct verifications a BatchVerifier keeps serialised. */
const MAX_SERIALISED = 10_000;
const roles = new Set(rolePrefixes);

const domainOf = (email: string) => email.slice(email.lastIndexOf('@') + 1).toLowerCase();

/** Whether the domain or one of its parents (mail.tempmail.example) is on the disposable list. */
function isDisposable(domain: string): boolean {
  for (let d = domain; d.includes('.'); d = d.slice(d.indexOf('.') + 1)) if (disposableDomains().has(d)) return true;
  return false;
}

/** The local part without a `+tag` is what names the role: info+news@ is still info@. */
function isRole(email: string): boolean {
  const local = email.slice(0, email.lastIndexOf('@')).toLowerCase();
  return roles.has(local.split('+')[0]!);
}

/** The verification of an address whose domain's answer is `domain` (`validSyntax`: already checked, as on import). */
export function classify(email: string, domain: MailDomain, now: Date, validSyntax = false): Verification {
  const syntax = validSyntax || !('problem' in checkEmail(email));
  const checks = { syntax, domain, disposable: syntax && isDisposable(domainOf(email)), role: syntax && isRole(email) };
  const reasons: VerificationReason[] = [];
  if (!syntax) reasons.push('invalid_syntax');
  if (syntax && domain === 'none') reasons.push('no_mail_domain');
  if (syntax && domain === 'unknown') reasons.push('dns_unanswered');
  if (checks.disposable) reasons.push('disposable_domain');
  if (checks.role) reasons.push('role_address');
  const status: VerificationStatus =
    !syntax || domain === 'none' ? 'undeliverable' : checks.disposable || checks.role ? 'risky' : domain === 'unknown' ? 'unknown' : 'deliverable';
  return { status, reasons, checks, checkedAt: now.toISOString() };
}

/** Verifies one address now, waiting for DNS at most its lookup timeout. */
export async function verifyAddress(domains: MailDomains, email: string, now: Date): Promise<Verification> {
  const syntax = !('problem' in checkEmail(email));
  return classify(email, syntax ? await domains.lookup(domainOf(email)) : 'unknown', now);
}

/**
 * Verification of many addresses in a stream (an import): lookups start as addresses are read
 * (`prefetch`), and `settle` waits for those of a batch at most `maxWaitMs` — a domain still
 * unanswered by then is `unknown` for this batch, so a slow or dead DNS server delays each batch by
 * that much at worst, never more. Lookups go on meanwhile and fill the cache for later batches.
 */
export class BatchVerifier {
  /** Serialised verifications by domain, answer and role: most rows of a list share a few. */
  private readonly serialised = new Map<string, string>();

  constructor(private readonly domains: MailDomains, private readonly maxWaitMs: number) {}

  prefetch(email: string): void {
    const domain = domainOf(email);
    if (this.domains.cached(domain) === undefined) void this.domains.lookup(domain);
  }

  /** Waits (bounded) for the domains of these addresses; answers only when all are in the cache or the time is up. */
  async settle(emails: string[]): Promise<void> {
    const pending = new Set<string>();
    for (const email of emails) {
      const domain = domainOf(email);
      if (this.domains.cached(domain) === undefined) pending.add(domain);
    }
    if (pending.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const lookups = Promise.all([...pending].map((d) => this.domains.lookup(d)));
    await Promise.race([lookups, new Promise((resolve) => (timer = setTimeout(resolve, this.maxWaitMs)))]);
    clearTimeout(timer);
  }

  verify(email: string, now: Date): Verification {
    return classify(email, this.domains.cached(domainOf(email)) ?? 'unknown', now);
  }

  /** verify() as JSON, for an address whose syntax was checked; one batch shares `now`. */
  verifiedJson(email: string, now: Date): string {
    const domain = domainOf(email);
    const answer = this.domains.cached(domain) ?? 'unknown';
    const key = `${isRole(email) ? 'r' : '-'}${answer}@${domain}`;
    let json = this.serialised.get(key);
    if (json === undefined) {
      if (this.serialised.size >= MAX_SERIALISED) this.serialised.clear();
      json = JSON.stringify(classify(email, answer, now, true));
      this.serialised.set(key, json);
    }
    return json;
  }
}
