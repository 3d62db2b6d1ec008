import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Unsubscribe tokens carry who and what (user, campaign, address) and an HMAC over them, so a
 * token is validated without a database lookup, cannot be forged or altered, and keeps working
 * after the campaign's per-recipient rows are archived.
 */
export interface UnsubscribeClaim {
  userId: number;
  campaignId: number;
  email: string;
}

const MAC_BYTES = 16;
/**
 * The longest token accepted (the HTTP router's path-parameter limit too). The longest a token
 * gets: ids up to 2^31 - 1 and a 254-character address (RFC 5321 §4.5.3.1.3) make ~400 characters.
 */
export const MAX_TOKEN_CHARS = 2000;

function mac(secret: Buffer, payload: string): Buffer {
  return createHmac('sha256', secret).update(`unsubscribe:${payload}`).digest().subarray(0, MAC_BYTES);
}

export function unsubscribeToken(secret: Buffer, claim: UnsubscribeClaim): string {
  const payload = Buffer.from(JSON.stringify([claim.userId, claim.campaignId, claim.email])).toString('base64url');
  return `${payload}.${mac(secret, payload).toString('base64url')}`;
}

export function readUnsubscribeToken(secret: Buffer, token: string): UnsubscribeClaim | undefined {
  const [payload, signature] = token.split('.');
  if (!payload || !signature || token.split('.').length !== 2) return undefined;
  const given = Buffer.from(signature, 'base64url');
  const expected = mac(secret, payload);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
  try {
    const [userId, campaignId, email] = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as [number, number, string];
    if (!Number.isInteger(userId) || !Number.isInteger(campaignId) || typeof email !== 'string') return undefined;
    return { userId, campaignId, email };
  } catch {
    return undefined;
  }
}

/**
 * The tag in Message-IDs `<campaign.message.tag@domain>`: the same on every attempt, whichever
 * account or process sends, unlike another MailPilot's ids on the same domain, and signed over both
 * ids, so a report or reply naming a Message-ID proves it saw that very message (src/reports/).
 */
export function messageIdTag(secret: Buffer, campaignId: number, messageId: number): string {
  return createHmac('sha256', secret).update(`message-id:${campaignId}:${messageId}`).digest('base64url').slice(0, 10);
}
