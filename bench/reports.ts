/**
 * Bounce, complaint and reply benchmark: what each send now pays for its signed Message-ID tag and
 * VERP envelope sender, what reading a report costs (mailparser plus the DSN/ARF fields), and how
 * many reports a second the inbound SMTP port takes end to end (SMTP session, reading, one
 * tenant-scoped transaction each) on the embedded database. Costs are CPU time, which other work on
 * the machine moves far less than wall time.
 *
 *   npx tsx bench/reports.ts
 *
 * BENCH_REPORTS (2000) reports read and delivered; stdout gets one JSON line.
 */
import { randomBytes } from 'node:crypto';
import { loadavg, tmpdir } from 'node:os';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import { messageIdTag } from '../src/campaigns/unsubscribe.ts';
import { loadConfig } from '../src/config.ts';
import { openDatabase } from '../src/db/database.ts';
import { createLogger } from '../src/log.ts';
import { readReport } from '../src/reports/readReport.ts';
import { envelopeSender } from '../src/reports/verp.ts';
import { startMailPilot } from '../src/server.ts';
import { intEnv, logger, machine, printResult } from './lib/report.ts';

const log = logger('reports');
const reports = intEnv('BENCH_REPORTS', 2000);
const loadAtStart = loadavg()[0]!;
const secret = randomBytes(32);

function dsn(messageId: string, to: string): string {
  return [
    'From: MAILER-DAEMON@mx.rcpt.test',
    `To: <${to}>`,
    'Subject: Undelivered Mail Returned to Sender',
    'MIME-Version: 1.0',
    'Content-Type: multipart/report; report-type=delivery-status; boundary="b"',
    '',
    '--b',
    'Content-Type: text/plain',
    '',
    'Your message could not be delivered.',
    '--b',
    'Content-Type: message/delivery-status',
    '',
    'Reporting-MTA: dns; mx.rcpt.test',
    '',
    'Final-Recipient: rfc822; ann@rcpt.test',
    'Action: failed',
    'Status: 5.1.1',
    'Diagnostic-Code: smtp; 550 5.1.1 User unknown',
    '--b',
    'Content-Type: text/rfc822-headers',
    '',
    `Message-ID: ${messageId}`,
    'To: <ann@rcpt.test>',
    '--b--',
    '',
  ].join('\r\n');
}

/** CPU time (user + system, µs) this process spent in fn: unlike wall time, other work on the machine does not move it. */
async function cpuMicros(fn: () => Promise<void> | void): Promise<number> {
  const before = process.cpuUsage();
  await fn();
  const used = process.cpuUsage(before);
  return used.user + used.system;
}

async function signing(): Promise<{ cpuUsPerMessage: number }> {
  const account = { email: 'news@bench.test', bounceDomain: 'bounces.bench.test' };
  const n = 100_000;
  const us = await cpuMicros(() => {
    for (let i = 1; i <= n; i++) {
      messageIdTag(secret, 1, i);
      envelopeSender(secret, account, { messageId: i, userId: 1 });
    }
  });
  return { cpuUsPerMessage: Number((us / n).toFixed(2)) };
}

async function reading(): Promise<{ cpuUsPerReport: number }> {
  const raw = Buffer.from(dsn('<1.2.abcdefghij@mp.bench.test>', 'x@y'));
  for (let i = 0; i < 200; i++) await readReport(raw);
  const us = await cpuMicros(async () => {
    for (let i = 0; i < reports; i++) await readReport(raw);
  });
  return { cpuUsPerReport: Math.round(us / reports) };
}

async function inbound(): Promise<{ reportsPerSecond: number; cpuUsPerReport: number; rssMb: number }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'mailpilot-bench-reports-'));
  const db = await openDatabase({});
  const config = { ...loadConfig({}), port: 0, dataDir, adminKey: 'bench', inbound: { host: '127.0.0.1', port: 0 } };
  const mp = await startMailPilot({ config, api: true, engine: false, db, log: createLogger('warn') });
  const transport = nodemailer.createTransport({ host: '127.0.0.1', port: mp.inbound!.port, secure: false, ignoreTLS: true, pool: true, maxConnections: 4, maxMessages: Infinity });
  try {
    // Reports for messages this database does not hold: each is read, verified and looked up once.
    const key = mp.ctx.secrets.secretKey;
    const send = (i: number) => {
      const to = envelopeSender(key, { email: 'n@b', bounceDomain: 'bounces.bench.test' }, { messageId: i, userId: 1 });
      return transport.sendMail({ envelope: { from: '', to: [to] }, raw: dsn(`<1.${i}.${messageIdTag(key, 1, i)}@mp.bench.test>`, to) });
    };
    for (let i = 1; i <= 50; i++) await send(i);
    const started = performance.now();
    const cpuBefore = process.cpuUsage();
    const inFlight = new Set<Promise<unknown>>();
    for (let i = 1; i <= reports; i++) {
      const p = send(1000 + i).finally(() => inFlight.delete(p));
      inFlight.add(p);
      if (inFlight.size >= 8) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
    const seconds = (performance.now() - started) / 1000;
    const cpu = process.cpuUsage(cpuBefore);
    log(`${reports} reports in ${seconds.toFixed(1)} s`);
    return {
      reportsPerSecond: Math.round(reports / seconds),
      // Both ends: the sending client runs in this process too.
      cpuUsPerReport: Math.round((cpu.user + cpu.system) / reports),
      rssMb: Math.round(process.memoryUsage().rss / 1024 / 1024),
    };
  } finally {
    transport.close();
    await mp.close();
    await db.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

printResult({
  bench: 'reports',
  reports,
  signing: await signing(),
  reading: await reading(),
  inbound: await inbound(),
  machine: machine(loadAtStart),
});
