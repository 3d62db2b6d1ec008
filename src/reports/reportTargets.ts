import { timingSafeEqual } from 'node:crypto';
import { messageIdTag } from '../campaigns/unsubscribe.ts';
import type { ReadReport } from './readReport.ts';
import { readVerpAddress, type VerpClaim } from './verp.ts';

/** One of a user's messages a report is about. */
export interface ReportTarget {
  userId: number;
  messageId: number;
  /** Known when matched by Message-ID: the row must belong to this campaign too. */
  campaignId?: number;
}

const MAX_INT = 2 ** 31 - 1;
const OWN_MESSAGE_ID = /^<(\d{1,10})\.(\d{1,15})\.([A-Za-z0-9_-]{10})@[^<>\s]+>$/;

/**
 * The campaign and message a Message-ID `<campaign.message.tag@domain>` of ours names, when its
 * tag holds under one of `secrets` (see Composer); undefined for any other Message-ID.
 */
export function readOwnMessageId(secrets: readonly Buffer[], id: string): { campaignId: number; messageId: number } | undefined {
  const m = OWN_MESSAGE_ID.exec(id.trim());
  if (!m) return undefined;
  const campaignId = Number(m[1]);
  const messageId = Number(m[2]);
  if (campaignId > MAX_INT || !Number.isSafeInteger(messageId)) return undefined;
  const given = Buffer.from(m[3]!);
  for (const secret of secrets) {
    const expected = Buffer.from(messageIdTag(secret, campaignId, messageId));
    if (given.length === expected.length && timingSafeEqual(given, expected)) return { campaignId, messageId };
  }
  return undefined;
}

/**
 * Which message a report is about. `scope` says where it came from: the inbound port knows the
 * VERP addresses it was delivered to (already verified; they decide), a mailbox knows its owner
 * (only that user's messages can match). Otherwise the first verified VERP address in the report,
 * then the first verified Message-ID. Undefined when nothing verifies: forged, foreign or unrelated.
 */
export function reportTarget(
  secrets: readonly Buffer[],
  report: ReadReport,
  scope: { delivery: VerpClaim } | { ownerId: number },
): ReportTarget | undefined {
  if ('delivery' in scope) return { userId: scope.delivery.userId, messageId: scope.delivery.messageId };
  for (const address of report.verpCandidates) {
    const claim = readVerpAddress(secrets, address);
    if (claim && claim.userId === scope.ownerId) return { userId: claim.userId, messageId: claim.messageId };
  }
  for (const id of report.messageIds) {
    const own = readOwnMessageId(secrets, id);
    if (own) return { userId: scope.ownerId, ...own };
  }
  return undefined;
}
