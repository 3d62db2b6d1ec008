import { createCampaign, importList, type Campaign } from './campaignSetup.ts';
import { contact } from './content.ts';
import { startCountingPeer, type CountingPeer, type WireSnapshot } from './countingPeer.ts';
import { apiClient, startMailPilot, type MailPilotServer } from './mailpilot.ts';
import { freePort } from './smtpSink.ts';

export interface CrashRunOptions {
  /** A PostgreSQL database URL; empty: the embedded database in `dataDir`. */
  databaseUrl: string;
  /** MailPilot's data directory, kept across the restarts (the embedded database lives there). */
  dataDir: string;
  kills: number;
  accounts: number;
  connectionsPerAccount: number;
  /** Each account's pace (messages a second); null: as fast as it goes. */
  ratePerSecond: number | null;
  recipients: number;
  /** How long the peer holds each reply to the data (ms): the sends on the wire at a kill. */
  dataDelayMs: number;
  /** Each kill comes a random time within [min, max] ms after the (re)started process delivered its first message. */
  killAfterMs: readonly [number, number];
  /** MAILPILOT_LEASE_SECONDS: how soon the restarted process takes over the dead one's accounts. */
  leaseSeconds: number;
  /** For the campaign to complete after the last restart, and for each restart to deliver again. */
  timeoutMs: number;
  log: (line: string) => void;
}

/** One SIGKILL, as the peer saw it. */
export interface KillFigures {
  /** Real ms after the killed process's first delivery. */
  afterMs: number;
  /** What the peer saw open at the kill instant. */
  wire: WireSnapshot;
  /** Recipients delivered by the killed process and again after it. */
  doubled: number;
  /** The promise (DESIGN.md 5): 2 × the connections open at the kill. */
  bound: number;
}

export interface CrashRunResult {
  kills: KillFigures[];
  recipients: number;
  /** Recipients the peer never received. */
  lost: number;
  /** Deliveries beyond the first, in total. */
  doubled: number;
  /** Recipients delivered twice within one process life (no crash between): never expected. */
  doubledWithoutCrash: number;
  campaign: Campaign;
  elapsedMs: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** After a kill, the peer may still be reading what the dead process had already written. */
const SETTLE_AFTER_KILL_MS = 300;

async function until<T>(what: string, timeoutMs: number, poll: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await poll();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** A user with one SMTP server (the peer), `accounts` accounts of `connectionsPerAccount` connections, and a campaign to the bench contacts. */
async function setUp(server: MailPilotServer, peer: CountingPeer, opts: CrashRunOptions): Promise<{ apiKey: string; campaignId: number }> {
  const admin = apiClient(server.url, server.adminKey);
  const user = await admin.call<{ apiKey: string }>('POST', '/api/v1/users', { body: { name: 'crash', email: 'crash@bench.test' }, expect: 201 });
  const api = apiClient(server.url, user.apiKey);
  const smtp = await api.call<{ id: number }>('POST', '/api/v1/smtp-servers', {
    body: { name: 'counting peer', host: '127.0.0.1', port: peer.port, security: 'none', maxConnections: opts.accounts * opts.connectionsPerAccount },
    expect: 201,
  });
  for (let i = 0; i < opts.accounts; i++) {
    await api.call('POST', '/api/v1/smtp-accounts', {
      body: { serverId: smtp.id, email: `sender${i}@bench.test`, hourlyLimit: 0, dailyLimit: 0, ratePerSecond: opts.ratePerSecond },
      expect: 201,
    });
  }
  const listId = await importList(api, 0, opts.recipients);
  const campaign = await createCampaign(api, 'crash', [listId]);
  return { apiKey: user.apiKey, campaignId: campaign.id };
}

/**
 * Sends a campaign through `mailpilot serve`, SIGKILLs it `kills` times at random moments
 * (restarting it on the same database each time), lets the campaign complete, then counts from
 * what the peer received: recipients lost, and per kill the recipients the killed process
 * delivered that were delivered again after it, next to what was open on the wire at the kill.
 */
export async function runCrashes(opts: CrashRunOptions): Promise<CrashRunResult> {
  const peer = await startCountingPeer({ dataDelayMs: opts.dataDelayMs });
  const env = { MAILPILOT_LEASE_SECONDS: String(opts.leaseSeconds) };
  const start = (keys?: { adminKey: string; secretKey: string }) =>
    freePort().then((port) => startMailPilot({ databaseUrl: opts.databaseUrl, dataDir: opts.dataDir, port, keys, env }));
  let server = await start();
  try {
    const t0 = performance.now();
    const { apiKey, campaignId } = await setUp(server, peer, opts);
    let api = apiClient(server.url, apiKey);
    await api.call('POST', `/api/v1/campaigns/${campaignId}/start`);
    const kills: Omit<KillFigures, 'doubled' | 'bound'>[] = [];
    for (let k = 0; k < opts.kills; k++) {
      const before = peer.delivered;
      await until(`process ${k + 1} to deliver`, opts.timeoutMs, async () => (peer.delivered > before ? true : undefined));
      const [min, max] = opts.killAfterMs;
      const afterMs = Math.round(min + Math.random() * (max - min));
      await sleep(afterMs);
      const wire = peer.snapshot();
      await server.kill();
      await sleep(SETTLE_AFTER_KILL_MS);
      peer.nextEpoch();
      kills.push({ afterMs, wire });
      opts.log(`kill ${k + 1}/${opts.kills} ${afterMs} ms after it delivered again: ${wire.openConnections} connections open, ${wire.inFlight} in flight`);
      server = await start({ adminKey: server.adminKey, secretKey: server.secretKey });
      api = apiClient(server.url, apiKey);
    }
    const campaign = await until('the campaign to complete', opts.timeoutMs, async () => {
      const c = await api.call<Campaign>('GET', `/api/v1/campaigns/${campaignId}`);
      return c.status === 'completed' ? c : undefined;
    });
    const elapsedMs = Math.round(performance.now() - t0);
    return { ...tally(peer, opts.recipients, kills), campaign, elapsedMs };
  } finally {
    await server.stop();
    await peer.close();
  }
}

/** Lost and doubled recipients from the peer's deliveries; a doubling counts against the kill that ended the earlier delivery's process. */
function tally(peer: CountingPeer, recipients: number, kills: Omit<KillFigures, 'doubled' | 'bound'>[]) {
  const deliveries = peer.deliveries();
  const doubledAt = kills.map(() => 0);
  let doubledWithoutCrash = 0;
  let lost = 0;
  let doubled = 0;
  for (let i = 0; i < recipients; i++) {
    const epochs = deliveries.get(contact(i).email);
    if (!epochs) {
      lost++;
      continue;
    }
    doubled += epochs.length - 1;
    for (let d = 1; d < epochs.length; d++) {
      const earlier = epochs[d - 1]!;
      if (epochs[d] === earlier) doubledWithoutCrash++;
      else doubledAt[earlier]!++;
    }
  }
  return {
    kills: kills.map((k, i) => ({ ...k, doubled: doubledAt[i]!, bound: 2 * k.wire.openConnections })),
    recipients,
    lost,
    doubled,
    doubledWithoutCrash,
  };
}
