import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { AppContext } from './context.ts';
import { CAMPAIGN_STATUSES } from './states.ts';
import { activeAccounts, campaignStates, countLiveWorkers, countSending } from './db/metrics.ts';
import { readAccountUsage } from './sendingPolicy/accountUsage.ts';

/** Seconds from handing a message to the SMTP server to its reply. */
const SEND_LATENCY_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/**
 * Prometheus metrics of one MailPilot instance, in a registry of its own (several instances in one
 * process must not share counters). Labels carry ids only: never an address, a name or a secret.
 *
 * Send outcomes come from the workers' `account.outcomes` events, so they count what this process
 * sent; the gauges are read from the database at scrape time and describe the whole cluster.
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly outcomes: Counter<'outcome' | 'account_id' | 'user_id'>;
  private readonly latency: Histogram;
  private readonly queue: Gauge<'status'>;
  private readonly campaigns: Gauge<'status'>;
  private readonly workers: Gauge;
  private readonly quota: Gauge<'account_id' | 'user_id' | 'window'>;
  private readonly unsubscribe: () => void;
  private readonly stopReports: () => void;

  constructor(private readonly ctx: AppContext) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'mailpilot_process_' });
    this.outcomes = new Counter({
      name: 'mailpilot_send_outcomes_total',
      help: 'SMTP sends by outcome class (sent, retry, failed, account_throttled, account_exhausted, account_disabled, unknown) and account',
      labelNames: ['outcome', 'account_id', 'user_id'],
      registers,
    });
    this.latency = new Histogram({
      name: 'mailpilot_send_duration_seconds',
      help: 'Time from handing a message to the SMTP server to its reply',
      buckets: SEND_LATENCY_BUCKETS_S,
      registers,
    });
    this.queue = new Gauge({
      name: 'mailpilot_queue_messages',
      help: 'Messages not yet in a final state: pending (waiting in the queue) or sending (claimed by a worker)',
      labelNames: ['status'],
      registers,
    });
    this.campaigns = new Gauge({ name: 'mailpilot_campaigns', help: 'Campaigns by status', labelNames: ['status'], registers });
    this.workers = new Gauge({
      name: 'mailpilot_active_workers',
      help: 'Account workers holding a live lease, cluster-wide (one per sending SMTP account)',
      registers,
    });
    this.quota = new Gauge({
      name: 'mailpilot_account_quota_remaining',
      help: 'Sends an active account has left in its current hour or day; absent for a window without limit',
      labelNames: ['account_id', 'user_id', 'window'],
      registers,
    });
    this.stopReports = this.countReports(registers);
    this.unsubscribe = ctx.events.on((e) => {
      if (e.type !== 'account.outcomes') return;
      const labels = { account_id: String(e.accountId), user_id: String(e.userId) };
      for (const [outcome, n] of Object.entries(e.counts)) if (n > 0) this.outcomes.inc({ ...labels, outcome }, n);
      for (const ms of e.latenciesMs) this.latency.observe(ms / 1000);
    });
  }

  /**
   * Bounces, complaints and replies recorded on sent messages, and every incoming message by what
   * became of it, as this process read them (the inbound port and the mailboxes run in `serve`).
   */
  private countReports(registers: Registry[]): () => void {
    const bounces = new Counter({ name: 'mailpilot_bounces_total', help: 'Bounces recorded after a message was accepted, by type (hard, soft)', labelNames: ['type'], registers });
    const complaints = new Counter({ name: 'mailpilot_complaints_total', help: 'Complaints (ARF reports) recorded on sent messages', registers });
    const replies = new Counter({ name: 'mailpilot_replies_total', help: 'Replies from people recorded on sent messages', registers });
    const received = new Counter({
      name: 'mailpilot_inbound_messages_total',
      help: 'Incoming messages (source: smtp, imap) by result: applied, duplicate, auto_reply, ignored, unmatched, malformed, refused, deferred',
      labelNames: ['source', 'result'],
      registers,
    });
    for (const type of ['hard', 'soft']) bounces.inc({ type }, 0);
    const offReports = this.ctx.events.on((e) => {
      if (e.type !== 'message.report') return;
      if (e.kind === 'hard_bounce') bounces.inc({ type: 'hard' });
      else if (e.kind === 'soft_bounce') bounces.inc({ type: 'soft' });
      else if (e.kind === 'complaint') complaints.inc();
      else replies.inc();
    }, { type: 'message.report' });
    const offReceived = this.ctx.events.on((e) => {
      if (e.type === 'report.received') received.inc({ source: e.source, result: e.result });
    }, { type: 'report.received' });
    return () => {
      offReports();
      offReceived();
    };
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Reads the gauges from the database, then renders every metric in the Prometheus text format. */
  async scrape(): Promise<string> {
    const { db } = this.ctx;
    const now = this.ctx.clock.now();
    const [states, sending, workers, accounts] = await Promise.all([campaignStates(db), countSending(db), countLiveWorkers(db, now), activeAccounts(db)]);
    const usage = await readAccountUsage(db, accounts.map((a) => a.accountId), now);

    this.campaigns.reset();
    for (const status of CAMPAIGN_STATUSES) {
      this.campaigns.set({ status }, states.find((s) => s.status === status)?.campaigns ?? 0);
    }
    const unfinished = states.reduce((n, s) => n + s.unfinished, 0);
    this.queue.set({ status: 'pending' }, Math.max(0, unfinished - sending));
    this.queue.set({ status: 'sending' }, sending);
    this.workers.set(workers);

    // Reset first, so deleted or deactivated accounts disappear instead of keeping their last value.
    this.quota.reset();
    for (const a of accounts) {
      const u = usage.get(a.accountId)!;
      const labels = { account_id: String(a.accountId), user_id: String(a.userId) };
      if (u.hourlyLimit > 0) this.quota.set({ ...labels, window: 'hour' }, Math.max(0, u.hourlyLimit - u.sentThisHour));
      if (u.effectiveDailyLimit > 0) this.quota.set({ ...labels, window: 'day' }, Math.max(0, u.effectiveDailyLimit - u.sentToday));
    }
    return this.registry.metrics();
  }

  close(): void {
    this.unsubscribe();
    this.stopReports();
  }
}
