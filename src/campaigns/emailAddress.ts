import { z } from 'zod';

const emailSyntax = z.email();
const MAX_ADDRESS = 254;
// Addresses end up in mail headers.
const HEADER_BREAKER = /[\r\n\0]/;

/**
 * An address as imported: trimmed, its domain lower-cased (domains are case-insensitive; local
 * parts may not be), or why it is not a usable address. Stored addresses compare by lower(email).
 */
export function checkEmail(raw: unknown): { email: string } | { problem: string } {
  if (raw === undefined || raw === null || raw === '') return { problem: 'email: missing' };
  if (typeof raw !== 'string') return { problem: 'email: must be a string' };
  const trimmed = raw.trim();
  if (HEADER_BREAKER.test(trimmed)) return { problem: 'email: must not contain line breaks or NUL' };
  if (trimmed.length > MAX_ADDRESS || !emailSyntax.safeParse(trimmed).success) return { problem: 'email: not a valid email address' };
  const at = trimmed.lastIndexOf('@');
  return { email: trimmed.slice(0, at + 1) + trimmed.slice(at + 1).toLowerCase() };
}
