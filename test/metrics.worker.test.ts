import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/log.ts';
import { startMailPilot, type MailPilot } from '../src/server.ts';
import { freshDatabase, type TestDatabase } from './helpers/db.ts';
import { addAccount, addList, addServer, createCampaign, must, waitForCampaign } from './helpers/fixtures.ts';
import { apiClient, type ApiClient } from './helpers/mailpilot.ts';
import { parsePrometheus, sumOf, type Sample } from './helpers/prometheus.ts';
import { freePort, newCluster, spawnMailPilot, stopProcess, type Cluster, type EngineProcess } from './helpers/processes.ts';
import { startSmtpPeer, type SmtpPeer } from './helpers/smtpPeer.ts';

const HOURLY = 10;
const RECIPIENTS = 25;

async function scrape(url: string, key: string): Promise<Sample[]> {
  const res = await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${key}` } });
  expect(res.status).toBe(200);
  return parsePrometheus(await res.text());
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe.skipIf(!process.env.TEST_DATABASE_URL)(
  'a `mailpilot worker` process serves its own /metrics on MAILPILOT_METRICS_PORT (needs TEST_DATABASE_URL: a worker needs a PostgreSQL server)',
  () => {
    let database: TestDatabase;
    let cluster: Cluster;
    let api: MailPilot;
    let client: ApiClient;
    let worker: EngineProcess;
    let peer: SmtpPeer;
    let metricsUrl: string;
    let dataDir: string;

    beforeAll(async () => {
      database = await freshDatabase('postgres');
      cluster = newCluster(database.url!);
      dataDir = mkdtempSync(join(tmpdir(), 'mailpilot-metrics-'));
      // The API without an engine, so every send of the campaign is the worker's.
      const config = { ...loadConfig({}), port: 0, dataDir, adminKey: cluster.adminKey, secretKey: cluster.secretKey, logLevel: 'warn' };
      api = await startMailPilot({ config, api: true, engine: false, db: database.db, log: createLogger('warn') });
      client = { api: apiClient(api.url!) };
      peer = await startSmtpPeer({ users: { sender: 'right' } });
      const port = await freePort();
      worker = await spawnMailPilot('worker', cluster, { MAILPILOT_METRICS_PORT: String(port) });
      metricsUrl = `http://127.0.0.1:${port}`;
    });
    afterAll(async () => {
      if (worker) await stopProcess(worker);
      await api?.close();
      await peer?.close();
      await database?.drop();
      rmSync(dataDir, { recursive: true, force: true });
    });

    it('counts the sends, sessions, refusals and outcome writes of that process, labelled as a worker, adding up with serve', async () => {
      const user = await must(client, cluster.adminKey, 'POST', '/api/v1/users', { name: 'ops', email: 'ops@example.test' });
      const serverId = await addServer(client, user.apiKey, peer.port, 4);
      await addAccount(client, user.apiKey, serverId, 'good@ops.test', { hourlyLimit: HOURLY, username: 'sender', password: 'right' });
      const badId = await addAccount(client, user.apiKey, serverId, 'bad@ops.test', { hourlyLimit: HOURLY, username: 'sender', password: 'wrong' });
      const listId = await addList(client, user.apiKey, RECIPIENTS);
      const id = await createCampaign(client, user.apiKey, [listId]);

      const before = await scrape(metricsUrl, cluster.adminKey);
      expect(sumOf(before, 'mailpilot_send_outcomes_total')).toBe(0);
      expect(sumOf(before, 'mailpilot_process_info', { role: 'worker' })).toBe(1);

      await must(client, user.apiKey, 'POST', `/api/v1/campaigns/${id}/start`);
      // The good account spends its hour, the bad one is disabled at its login: the campaign waits.
      const paused = await waitForCampaign(client, user.apiKey, id, (c) => c.status === 'paused_limits');
      await until('the worker to let go of every account', async () => {
        const rows = await database.db.query('SELECT id FROM smtp_accounts WHERE lease_owner IS NOT NULL');
        return rows.length === 0;
      });
      const bad = await must(client, user.apiKey, 'GET', `/api/v1/smtp-accounts/${badId}`);
      expect(bad.health.state).toBe('disabled');

      const w = await scrape(metricsUrl, cluster.adminKey);
      expect(peer.messages.length).toBe(HOURLY);
      expect(paused.sent).toBe(HOURLY);
      expect(sumOf(w, 'mailpilot_send_outcomes_total', { outcome: 'sent' })).toBe(HOURLY);
      expect(sumOf(w, 'mailpilot_send_duration_seconds_count')).toBe(sumOf(w, 'mailpilot_send_outcomes_total'));
      // Every connection the peer took is one session opened or failed, the refused login by its class.
      expect(peer.authFailures).toBeGreaterThan(0);
      expect(sumOf(w, 'mailpilot_smtp_session_failures_total', { class: 'credentials' })).toBe(peer.authFailures);
      expect(sumOf(w, 'mailpilot_smtp_sessions_opened_total') + sumOf(w, 'mailpilot_smtp_session_failures_total')).toBe(peer.connections);
      expect(sumOf(w, 'mailpilot_reservations_refused_total', { reason: 'limits' })).toBeGreaterThanOrEqual(1);
      expect(sumOf(w, 'mailpilot_outcome_rows_written_total')).toBeGreaterThanOrEqual(HOURLY);
      expect(sumOf(w, 'mailpilot_outcome_write_seconds_count')).toBeGreaterThanOrEqual(1);
      // Every series says which kind of process it came from; the cluster's gauges are serve's alone.
      expect(w.every((s) => s.labels.role === 'worker')).toBe(true);
      expect(w.find((s) => s.name === 'mailpilot_process_info')!.labels.node).toMatch(new RegExp(`:${worker.pid}$`));
      expect(w.some((s) => s.name === 'mailpilot_queue_messages' || s.name === 'mailpilot_accounts')).toBe(false);

      const s = await scrape(api.url!, cluster.adminKey);
      expect(s.every((x) => x.labels.role === 'serve')).toBe(true);
      expect(sumOf(s, 'mailpilot_queue_messages', { status: 'pending' })).toBe(RECIPIENTS - HOURLY);
      expect(sumOf(s, 'mailpilot_accounts', { health: 'disabled' })).toBe(1);
      expect(sumOf(s, 'mailpilot_accounts', { health: 'healthy' })).toBe(1);
      expect(sumOf(s, 'mailpilot_active_workers')).toBe(0);
      // Summed over both processes the counters give the cluster's sends, each counted once.
      expect(sumOf([...s, ...w], 'mailpilot_send_outcomes_total', { outcome: 'sent' })).toBe(peer.messages.length);
    });

    it('takes the admin key and serves nothing else', async () => {
      expect((await fetch(`${metricsUrl}/metrics`)).status).toBe(401);
      const user = await fetch(`${metricsUrl}/metrics`, { headers: { authorization: 'Bearer mp_not-the-admin' } });
      expect(user.status).toBe(401);
      expect((await fetch(`${metricsUrl}/healthz`, { headers: { authorization: `Bearer ${cluster.adminKey}` } })).status).toBe(404);
    });
  },
);
