import { createHash, createPrivateKey, sign, type KeyObject } from 'node:crypto';

/**
 * DKIM signatures (RFC 6376, rsa-sha256, relaxed/relaxed) for the messages mime.ts renders. The
 * message is already a string in hand, so signing it here costs a hash of the body and one RSA
 * signature, with no second pass through a MIME parser.
 */
export interface DkimKey {
  domain: string;
  selector: string;
  privateKey: KeyObject;
}

export const MIN_RSA_BITS = 1024;
const MAX_RSA_BITS = 8192;
const CRLF = '\r\n';

/** Why a PEM private key cannot sign, or undefined when it can. */
export function dkimKeyProblem(pem: string): string | undefined {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch {
    return 'must be a PEM-encoded private key';
  }
  if (key.asymmetricKeyType !== 'rsa') return 'must be an RSA key (rsa-sha256)';
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < MIN_RSA_BITS || bits > MAX_RSA_BITS) return `must be an RSA key of ${MIN_RSA_BITS} to ${MAX_RSA_BITS} bits`;
  return undefined;
}

export function dkimKey(domain: string, selector: string, pem: string): DkimKey {
  return { domain, selector, privateKey: createPrivateKey(pem) };
}

/** Relaxed body canonicalisation (RFC 6376 §3.4.4). */
function canonicalBody(body: string): string {
  const relaxed = body
    .replace(/[ \t]+/g, ' ')
    .replace(/ (?=\r\n|$)/g, '')
    .replace(/(?:\r\n)+$/, '');
  return relaxed === '' ? '' : relaxed + CRLF;
}

/** Relaxed header canonicalisation (RFC 6376 §3.4.2) of one field, folded or not. */
function canonicalHeader(field: string): string {
  const colon = field.indexOf(':');
  const value = field
    .slice(colon + 1)
    .replace(/\r\n(?=[ \t])/g, '')
    .replace(/[ \t]+/g, ' ')
    .trim();
  return `${field.slice(0, colon).trim().toLowerCase()}:${value}`;
}

/**
 * The DKIM-Signature field for a message made of `headers` (whole fields, folding included) and
 * `body`; every given header is signed. `now` is the signing time (t=).
 */
export function dkimSignature(headers: string[], body: string, key: DkimKey, now: Date): string {
  const bodyHash = createHash('sha256').update(canonicalBody(body)).digest('base64');
  const names = headers.map((h) => h.slice(0, h.indexOf(':')).trim().toLowerCase());
  const unsigned =
    `DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=${key.domain}; s=${key.selector};${CRLF}` +
    ` t=${Math.floor(now.getTime() / 1000)}; h=${names.join(':')};${CRLF} bh=${bodyHash};${CRLF} b=`;
  const signed = headers.map((h) => canonicalHeader(h) + CRLF).join('') + canonicalHeader(unsigned);
  const signature = sign('sha256', Buffer.from(signed), key.privateKey).toString('base64');
  // Folded every 72 characters: verifiers drop the whitespace inside b= before decoding it.
  return unsigned + signature.replace(/.{72}(?=.)/g, `$&${CRLF} `);
}
