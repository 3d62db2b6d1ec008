import { Counter, Histogram, type Registry } from 'prom-client';
import type { Events } from './events.ts';
import { PAUSE_REASONS } from './states.ts';

/** Seconds from handing a message to the SMTP server to its reply. */
const SEND_LATENCY_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** Seconds from a worker handing outcomes over to their landing (OutcomeWriter groups them every 50 ms). */
const OUTCOME_WRITE_BUCKETS_S = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

/**
 * The counters of what this process did, from its events: each process counts only its own work,
 * so summing a counter over every process of the cluster gives the cluster's total. Labels carry
 * ids and bounded words only, never an address, a name, a server reply or a secret.
 * Returns the function that stops counting.
 */
export function countProcessEvents(events: Events, registers: Registry[]): () => void {
  const outcomes = new Counter({
    name: 'mailpilot_send_outcomes_total',
    help: 'SMTP sends by outcome class (sent, retry, failed, account_throttled, account_exhausted, account_disabled, unknown) and account',
    labelNames: ['outcome', 'account_id', 'user_id'],
    registers,
  });
  const latency = new Histogram({
    name: 'mailpilot_send_duration_seconds',
    help: 'Time from handing a message to the SMTP server to its reply',
    buckets: SEND_LATENCY_BUCKETS_S,
    registers,
  });
  const refusals = new Counter({
    name: 'mailpilot_reservations_refused_total',
    help: `Quota reservations of an account worker that the sending policy granted nothing, by reason (${PAUSE_REASONS.join(', ')})`,
    labelNames: ['reason'],
    registers,
  });
  const takeovers = new Counter({
    name: 'mailpilot_lease_takeovers_total',
    help: 'Account leases this process found expired under another holder (a crashed or stalled process) and took over or freed',
    registers,
  });
  const outcomeWrites = new Histogram({
    name: 'mailpilot_outcome_write_seconds',
    help: 'Time from a worker handing send outcomes over to their landing in the database (queueing, the statement, its retries), per written group',
    buckets: OUTCOME_WRITE_BUCKETS_S,
    registers,
  });
  const outcomeRows = new Counter({ name: 'mailpilot_outcome_rows_written_total', help: 'Send outcomes written to the database', registers });
  const sessionsOpened = new Counter({
    name: 'mailpilot_smtp_sessions_opened_total',
    help: 'SMTP sessions of account workers that opened (greeted, TLS and login done)',
    registers,
  });
  const sessionFailures = new Counter({
    name: 'mailpilot_smtp_session_failures_total',
    help: 'SMTP sessions that failed to open, by class (egress_denied, unresolved, not_smtp, timed_out, plaintext_auth, credentials, oauth_revoked, session_ended, account_throttled, ...)',
    labelNames: ['class'],
    registers,
  });
  const sse = new Counter({ name: 'mailpilot_sse_events_total', help: 'Server-Sent Events written to clients, by event (status, progress)', labelNames: ['event'], registers });
  const bounces = new Counter({ name: 'mailpilot_bounces_total', help: 'Bounces recorded after a message was accepted, by type (hard, soft)', labelNames: ['type'], registers });
  const complaints = new Counter({ name: 'mailpilot_complaints_total', help: 'Complaints (ARF reports) recorded on sent messages', registers });
  const replies = new Counter({ name: 'mailpilot_replies_total', help: 'Replies from people recorded on sent messages', registers });
  const received = new Counter({
    name: 'mailpilot_inbound_messages_total',
    help: 'Incoming messages (source: smtp, imap) by result: applied, duplicate, auto_reply, ignored, unmatched, malformed, refused, deferred',
    labelNames: ['source', 'result'],
    registers,
  });
  // Present from the start at 0, so rate() and alert rules see a series before the first event.
  for (const type of ['hard', 'soft']) bounces.inc({ type }, 0);
  for (const reason of PAUSE_REASONS) refusals.inc({ reason }, 0);
  for (const event of ['status', 'progress']) sse.inc({ event }, 0);

  return events.on((e) => {
    switch (e.type) {
      case 'account.outcomes': {
        const labels = { account_id: String(e.accountId), user_id: String(e.userId) };
        for (const [outcome, n] of Object.entries(e.counts)) if (n > 0) outcomes.inc({ ...labels, outcome }, n);
        for (const ms of e.latenciesMs) latency.observe(ms / 1000);
        return;
      }
      case 'engine.reservation_refused':
        return refusals.inc({ reason: e.reason });
      case 'engine.lease_takeover':
        return takeovers.inc();
      case 'engine.outcomes_written':
        outcomeWrites.observe(e.lagMs / 1000);
        return outcomeRows.inc(e.rows);
      case 'smtp.session':
        return e.result === 'opened' ? sessionsOpened.inc() : sessionFailures.inc({ class: e.result });
      case 'sse.delivered':
        return sse.inc({ event: e.event });
      case 'message.report':
        if (e.kind === 'hard_bounce') return bounces.inc({ type: 'hard' });
        if (e.kind === 'soft_bounce') return bounces.inc({ type: 'soft' });
        return e.kind === 'complaint' ? complaints.inc() : replies.inc();
      case 'report.received':
        return received.inc({ source: e.source, result: e.result });
      default:
        return undefined;
    }
  });
}
