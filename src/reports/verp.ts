import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * VERP envelope senders (variable envelope return path): an account with a bounce domain sends
 * each message with a MAIL FROM of its own, `mp.<message>.<user>.<mac>@<bounce domain>`, so a
 * bounce sent back to it names the message without reading a word of the report. The MAC (HMAC
 * over message and user with the secret key, as unsubscribe tokens) makes a forged or altered
 * address worthless, and no table of addresses is kept. Lower-case letters and digits only: some
 * mail systems change the case of local parts.
 */
export interface VerpClaim {
  /** The message's queue row; 0 for a test send (which has none). */
  messageId: number;
  userId: number;
}

const PREFIX = 'mp';
const MAX_INT = 2 ** 31 - 1;
const MAC_HEX_CHARS = 20;
const LOCAL_PART = /^mp\.([0-9a-z]{1,13})\.([0-9a-z]{1,7})\.([0-9a-f]{20})$/;

function mac(secret: Buffer, messageId: number, userId: number): string {
  return createHmac('sha256', secret).update(`verp:${messageId}:${userId}`).digest('hex').slice(0, MAC_HEX_CHARS);
}

/** The envelope sender of one message: a VERP address when the account has a bounce domain, else its own address. */
export function envelopeSender(secret: Buffer, account: { email: string; bounceDomain: string | null }, claim: VerpClaim): string {
  if (!account.bounceDomain) return account.email;
  const local = `${PREFIX}.${claim.messageId.toString(36)}.${claim.userId.toString(36)}.${mac(secret, claim.messageId, claim.userId)}`;
  return `${local}@${account.bounceDomain}`;
}

/**
 * The message a VERP address names, when its MAC holds under one of `secrets` (the current key
 * first, then earlier ones, so mail sent before a key rotation still matches). Undefined for any
 * other address.
 */
export function readVerpAddress(secrets: readonly Buffer[], address: string): VerpClaim | undefined {
  const at = address.lastIndexOf('@');
  const m = LOCAL_PART.exec((at < 0 ? address : address.slice(0, at)).toLowerCase());
  if (!m) return undefined;
  const messageId = Number.parseInt(m[1]!, 36);
  const userId = Number.parseInt(m[2]!, 36);
  if (!Number.isSafeInteger(messageId) || userId <= 0 || userId > MAX_INT) return undefined;
  const given = Buffer.from(m[3]!, 'hex');
  for (const secret of secrets) {
    if (timingSafeEqual(given, Buffer.from(mac(secret, messageId, userId), 'hex'))) return { messageId, userId };
  }
  return undefined;
}
