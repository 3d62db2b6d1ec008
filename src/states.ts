/**
 * The names of every state machine's states, declared once. TypeScript types, zod enums, event
 * types and the SQL the data layer writes derive from these arrays; the CHECK constraints of the
 * migrations are compared against them by test/states.test.ts, so a state added here and not there
 * (or the reverse) fails the suite.
 */

/** Campaign status (API.md): draft ⇄ scheduled → running ⇄ paused · running ⇄ paused_limits → completed; any → stopped. */
export const CAMPAIGN_STATUSES = ['draft', 'scheduled', 'running', 'paused', 'paused_limits', 'stopped', 'completed'] as const;
export type CampaignStatus = (typeof CAMPAIGN_STATUSES)[number];
/** The engine works for these: it sends (running) or waits for quota to come back (paused_limits). */
export const SENDING_CAMPAIGN_STATUSES = ['running', 'paused_limits'] as const satisfies readonly CampaignStatus[];
/** Not yet final: the campaign may still send through its user's accounts. */
export const UNFINISHED_CAMPAIGN_STATUSES = ['scheduled', 'running', 'paused', 'paused_limits'] as const satisfies readonly CampaignStatus[];
/** A stop is possible from every state that is not final. */
export const STOPPABLE_CAMPAIGN_STATUSES = ['draft', ...UNFINISHED_CAMPAIGN_STATUSES] as const satisfies readonly CampaignStatus[];

/**
 * Why the engine holds a campaign back (API.md `pauseReason`; a manual pause has none): which rule
 * of the sending policy keeps every account of its user from sending (src/sendingPolicy/policy.ts)
 * while it waits as paused_limits, or, for a `paused` one, that no account could ever send
 * (`account_health`, resumed when one can) or that its messages kept failing for the same local
 * reason (`repeated_failures`, resumed by its user only).
 */
export const PAUSE_REASONS = ['limits', 'sending_window', 'warmup', 'domain_cap', 'account_health', 'bounce_rate', 'repeated_failures'] as const;
export type PauseReason = (typeof PAUSE_REASONS)[number];

/** Message status: pending → sending → sent | failed | pending (retry) | cancelled; suppressed when the address is. */
export const MESSAGE_STATUSES = ['pending', 'sending', 'sent', 'failed', 'suppressed', 'cancelled'] as const;
export type MessageStatus = (typeof MESSAGE_STATUSES)[number];

/**
 * Account health (src/engine/accountHealth.ts owns every change of it). `paused`: its bounce or
 * complaint rate passed its user's threshold (src/engine/rateGuard.ts); only its user lifts it.
 */
export const HEALTH_STATES = ['healthy', 'throttled', 'exhausted', 'disabled', 'paused'] as const;
export type HealthState = (typeof HEALTH_STATES)[number];
/** The states an account leaves by itself when its `health_until` has passed. */
export const BACK_OFF_HEALTH_STATES = ['throttled', 'exhausted'] as const satisfies readonly HealthState[];

/** How an SMTP server's connection is secured: plain, upgraded with STARTTLS, or TLS from the start. */
export const SECURITY_MODES = ['none', 'starttls', 'tls'] as const;
export type Security = (typeof SECURITY_MODES)[number];

/**
 * Why an address is on a user's suppression list: `hard_bounce` refused during the SMTP conversation,
 * `bounce` a hard bounce reported afterwards (a DSN), `complaint` an ARF report, `erased` a
 * data-protection erasure (POST /api/v1/contacts/erase).
 */
export const SUPPRESSION_REASONS = ['unsubscribed', 'hard_bounce', 'manual', 'complaint', 'bounce', 'erased'] as const;
export type SuppressionReason = (typeof SUPPRESSION_REASONS)[number];

/** A bounce that came back after the message was accepted: hard (the address is bad) or soft (temporary). */
export const BOUNCE_TYPES = ['hard', 'soft'] as const;
export type BounceType = (typeof BOUNCE_TYPES)[number];

/**
 * Reading an account's mailbox over IMAP (src/reports/mailboxReader.ts): not yet tried, reading,
 * failing (connection or server trouble, retried with back-off), or its credentials refused.
 */
export const MAILBOX_STATES = ['unchecked', 'ok', 'failing', 'auth_failed'] as const;
export type MailboxState = (typeof MAILBOX_STATES)[number];

/**
 * A group of states as a SQL list (`'running', 'paused_limits'`), for `status IN (...)` written
 * into a statement: the planner then matches partial indexes declared on the same list, which a
 * parameter would not. Only these constants ever go in, never input.
 */
export const sqlList = (states: readonly string[]): string => states.map((s) => `'${s}'`).join(', ');
