import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { runCrashes } from '../bench/lib/crashRun.ts';
import { databaseKinds, freshDatabase, type TestDatabase } from './helpers/db.ts';

const RECIPIENTS = 2_000;

describe.each(databaseKinds)('a crash sends again only what was on the wire (%s)', (kind) => {
  let database: TestDatabase | undefined;
  let dataDir: string | undefined;
  afterEach(async () => {
    await database?.drop();
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    database = undefined;
    dataDir = undefined;
  });

  it('mailpilot serve SIGKILLed 3 times mid-campaign at full speed: none lost, each kill doubles at most 2 × the connections open at it', async () => {
    // The embedded database lives in the data dir and is served by the one process: each restart reopens it there.
    if (kind === 'postgres') database = await freshDatabase('postgres');
    dataDir = mkdtempSync(join(tmpdir(), 'mailpilot-crash-'));
    const run = await runCrashes({
      databaseUrl: database?.url ?? '',
      dataDir,
      kills: 3,
      accounts: 2,
      connectionsPerAccount: 2,
      ratePerSecond: null,
      recipients: RECIPIENTS,
      dataDelayMs: 5,
      killAfterMs: [200, 1_200],
      leaseSeconds: 2,
      timeoutMs: 120_000,
      log: () => undefined,
    });
    console.log(`crash (${kind}): ${JSON.stringify(run.kills)}; ${run.doubled} doubled in all`);
    expect(run.campaign).toMatchObject({ status: 'completed', total: RECIPIENTS, sent: RECIPIENTS });
    expect(run.lost).toBe(0);
    expect(run.doubledWithoutCrash).toBe(0);
    // Each kill came while the process was sending: its sessions were open.
    expect(run.kills.map((k) => k.wire.openConnections).every((n) => n > 0)).toBe(true);
    expect(run.kills.filter((k) => k.doubled > k.bound)).toEqual([]);
  }, 300_000);
});
