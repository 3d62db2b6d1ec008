/**
 * The field reading of delivery status notifications (RFC 3464 §2, `message/delivery-status`) and
 * feedback reports (RFC 5965 §3, `message/feedback-report`): groups of `Name: value` fields in the
 * header syntax of RFC 5322 (continuation lines start with white space), groups separated by blank
 * lines. A DSN has one per-message group, then one group per recipient; an ARF report has one group.
 * Everything else about those messages is MIME, which mailparser reads.
 */

/** One group of fields, by lower-case name; a repeated field keeps its first value. */
export type FieldGroup = Map<string, string>;

/** Fields of a group past this many are ignored; groups past MAX_GROUPS too (a report names a handful). */
const MAX_FIELDS = 100;
const MAX_GROUPS = 50;
const MAX_VALUE_CHARS = 1_000;

export function readFieldGroups(text: string): FieldGroup[] {
  const groups: FieldGroup[] = [];
  for (const block of text.replace(/\r\n?/g, '\n').split(/\n[ \t]*\n/)) {
    if (groups.length >= MAX_GROUPS) break;
    const group: FieldGroup = new Map();
    for (const line of block.replace(/\n[ \t]+/g, ' ').split('\n')) {
      const colon = line.indexOf(':');
      if (colon <= 0 || group.size >= MAX_FIELDS) continue;
      const name = line.slice(0, colon).trim().toLowerCase();
      if (!/^[a-z0-9-]+$/.test(name) || group.has(name)) continue;
      group.set(name, line.slice(colon + 1).trim().slice(0, MAX_VALUE_CHARS));
    }
    if (group.size > 0) groups.push(group);
  }
  return groups;
}

/**
 * A typed value such as `rfc822; ann@example.net` or `smtp; 550 5.1.1 unknown` without its type
 * (RFC 3464 address-type and diagnostic-type); a value without a type as it is.
 */
export function untyped(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const m = /^[A-Za-z0-9-]+\s*;\s*([\s\S]*)$/.exec(value);
  return (m ? m[1]! : value).trim();
}

/** What one recipient block of a DSN says (RFC 3464 §2.3). */
export interface DsnRecipient {
  finalRecipient: string | undefined;
  originalRecipient: string | undefined;
  /** failed, delayed, delivered, relayed or expanded (lower case). */
  action: string | undefined;
  /** An enhanced status code (RFC 3463), such as 5.1.1; undefined when absent or malformed. */
  status: string | undefined;
  diagnostic: string | undefined;
}

export interface DeliveryStatus {
  recipients: DsnRecipient[];
}

const STATUS_CODE = /^[245]\.\d{1,3}\.\d{1,3}$/;

/** Reads a `message/delivery-status` body: the per-message group is skipped, each recipient group read. */
export function readDeliveryStatus(text: string): DeliveryStatus {
  const groups = readFieldGroups(text);
  const recipients = groups
    .filter((g) => g.has('final-recipient') || g.has('action'))
    .map((g) => {
      const status = g.get('status')?.split(/\s/, 1)[0];
      return {
        finalRecipient: untyped(g.get('final-recipient')),
        originalRecipient: untyped(g.get('original-recipient')),
        action: g.get('action')?.toLowerCase().split(/[\s(]/, 1)[0],
        status: status && STATUS_CODE.test(status) ? status : undefined,
        diagnostic: untyped(g.get('diagnostic-code')),
      };
    });
  return { recipients };
}

/** What a feedback report says (RFC 5965 §3.1-3.2), as far as MailPilot uses it. */
export interface FeedbackReport {
  /** abuse, fraud, virus, other, not-spam, ... (lower case); undefined when absent. */
  feedbackType: string | undefined;
  /** The envelope sender of the reported message: a VERP address when the account has a bounce domain. */
  originalMailFrom: string | undefined;
  originalRcptTo: string | undefined;
}

export function readFeedbackReport(text: string): FeedbackReport {
  const g = readFieldGroups(text)[0] ?? new Map<string, string>();
  const address = (v: string | undefined) => v?.replace(/^<|>$/g, '').trim() || undefined;
  return {
    feedbackType: g.get('feedback-type')?.toLowerCase(),
    originalMailFrom: address(g.get('original-mail-from')),
    originalRcptTo: address(g.get('original-rcpt-to')),
  };
}
