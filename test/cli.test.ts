import { createServer } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from './helpers/db.ts';
import { runCli } from './helpers/cli.ts';
import { addList, must } from './helpers/fixtures.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';
import { startSmtpPeer, type SmtpPeer } from './helpers/smtpPeer.ts';

// Each command is a new Node process compiling TypeScript on start: a dozen of them take a while on a busy machine.
const CLI_TEST_TIMEOUT_MS = 300_000;

describe.each(databaseKinds)('the CLI drives a campaign from the command line, with exit codes scripts can trust (%s)', (kind) => {
  let t: TestMailPilot;
  let peer: SmtpPeer;
  beforeAll(async () => {
    t = await startTestMailPilot(kind);
    peer = await startSmtpPeer({ users: { news: 'secret from stdin' } });
  });
  afterAll(async () => {
    await t.close();
    await peer.close();
  });

  const as = (key: string) => ({ MAILPILOT_URL: t.url, MAILPILOT_API_KEY: key });
  const json = async (args: string[], key: string, input?: string) => {
    const r = await runCli(['--json', ...args], { env: as(key), input });
    if (r.code !== 0) throw new Error(`mailpilot ${args.join(' ')} → exit ${r.code}: ${r.stderr}`);
    return JSON.parse(r.stdout);
  };

  it('creates a user, its server, account, list and campaign, starts it and watches it to completion', async () => {
    const user = await json(['users', 'create', '--name', 'Cli', '--email', 'cli@example.test'], t.adminKey);
    expect(user.apiKey).toMatch(/^mp_/);
    const key = user.apiKey;

    const server = await json(['smtp', 'add-server', '--name', 'peer', '--host', '127.0.0.1', '--port', String(peer.port), '--security', 'none'], key);
    const account = await json(
      ['smtp', 'add-account', '--server', String(server.id), '--email', 'news@cli.test', '--username', 'news', '--password-stdin',
        '--hourly-limit', '100', '--daily-limit', '1000'],
      key,
      'secret from stdin\n',
    );
    expect(account).toMatchObject({ email: 'news@cli.test', hasPassword: true, usage: { hourlyLimit: 100, dailyLimit: 1000 } });
    expect(JSON.stringify(account)).not.toContain('secret from stdin');

    const list = await json(['lists', 'create', 'Newsletter'], key);
    await must(t, key, 'POST', `/api/v1/lists/${list.id}/contacts`, {
      contacts: Array.from({ length: 40 }, (_, i) => ({ email: `c${i}@rcpt.test`, name: `C${i}` })),
    });
    const human = await runCli(['lists', 'show', String(list.id)], { env: as(key) });
    expect(human).toMatchObject({ code: 0, stdout: `${list.id}\tNewsletter\t40 contacts\n` });

    const campaign = await json(
      ['campaigns', 'create', '--name', 'From the shell', '--list', String(list.id), '--subject', 'Hi {{name}}', '--text', 'Hello {{name}}', '--from-name', 'Shell'],
      key,
    );
    expect(campaign.status).toBe('draft');
    expect((await json(['campaigns', 'start', String(campaign.id)], key)).status).toBe('running');

    // --json watch: one JSON line per change, the last one final; exit 0 for completed.
    const watch = await runCli(['--json', 'campaigns', 'watch', String(campaign.id)], { env: as(key) });
    expect(watch.code).toBe(0);
    const updates = watch.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(updates.at(-1)).toMatchObject({ id: campaign.id, status: 'completed', sent: 40, pending: 0 });
    expect(peer.messages.filter((m) => m.user === 'news')).toHaveLength(40);

    // Without a terminal, watch prints plain progress lines and a summary.
    const plain = await runCli(['campaigns', 'watch', String(campaign.id)], { env: as(key) });
    expect(plain.code).toBe(0);
    expect(plain.stdout).toContain('From the shell 40/40 (100%) sent 40 failed 0 · completed');
    expect(plain.stdout).toContain(`Campaign ${campaign.id} completed: 40 sent, 0 failed, 0 suppressed, 0 cancelled.`);

    const shown = await runCli(['campaigns', 'show', String(campaign.id)], { env: as(key) });
    expect(shown.stdout).toContain('status      completed');
    expect(shown.stdout).toContain('progress    40/40 (100%)');

    const usage = await runCli(['smtp', 'accounts'], { env: as(key) });
    expect(usage.stdout).toContain('news@cli.test\thour 40/100\tday 40/1000\thealthy');

    // An account paused for its bounce rate shows why, and `smtp resume-account` lifts the pause.
    const reason = '12 hard bounces in the last 200 sends (6.0%, above 5%): check the list, then PATCH {"resume": true}';
    await t.mp.ctx.db.query(`UPDATE smtp_accounts SET health = 'paused', health_reason = $2 WHERE id = $1`, [account.id, reason]);
    expect((await runCli(['smtp', 'accounts'], { env: as(key) })).stdout).toContain(`\tpaused (${reason})`);
    const resumed = await runCli(['smtp', 'resume-account', '--account', String(account.id)], { env: as(key) });
    expect(resumed).toMatchObject({ code: 0, stdout: `SMTP account ${account.id} (news@cli.test): healthy.\n` });

    // A stopped campaign ends the watch with its own exit code.
    const second = await json(['campaigns', 'create', '--name', 'Stopped', '--list', String(list.id), '--subject', 's', '--text', 't'], key);
    await json(['campaigns', 'stop', String(second.id)], key);
    expect((await runCli(['campaigns', 'watch', String(second.id)], { env: as(key) })).code).toBe(8);
  }, CLI_TEST_TIMEOUT_MS);

  it('answers each kind of failure with its exit code and the API error', async () => {
    const { apiKey } = await t.createUser('failing');
    const listId = await addList(t, apiKey, 1, 'fail.test');
    const draft = await json(['campaigns', 'create', '--name', 'x', '--list', String(listId), '--subject', 's', '--text', 't'], apiKey);

    const closed = createServer().listen(0, '127.0.0.1');
    await new Promise((r) => closed.once('listening', r));
    const closedPort = (closed.address() as { port: number }).port;
    await new Promise((r) => closed.close(r));

    const cases: [string[], Record<string, string>, number, RegExp][] = [
      [['campaigns', 'show', '999999'], as(apiKey), 5, /campaign not found/],
      [['campaigns', 'resume', String(draft.id)], as(apiKey), 6, /cannot resume a campaign that is draft/],
      [['campaigns', 'start', String(draft.id)], as(apiKey), 6, /add an active SMTP account/],
      [['campaigns', 'show', String(draft.id)], as('mp_not-a-key'), 4, /valid API key/],
      [['campaigns', 'show', String(draft.id)], { MAILPILOT_URL: t.url }, 4, /MAILPILOT_API_KEY/],
      [['users', 'create', '--name', 'n', '--email', 'e@x.test'], as(apiKey), 4, /admin key/],
      [['smtp', 'add-server', '--name', 'n', '--host', 'bad host', '--port', '25'], as(apiKey), 7, /^mailpilot: host: /],
      [['campaigns', 'show', 'seven'], as(apiKey), 2, /positive integer/],
      [['campaigns', 'launch', '1'], as(apiKey), 2, /unknown command/],
      [['campaigns', 'show', '1'], { MAILPILOT_URL: `http://127.0.0.1:${closedPort}`, MAILPILOT_API_KEY: apiKey }, 3, /cannot reach MailPilot/],
    ];
    const results = await Promise.all(cases.map(([args, env]) => runCli(args, { env })));
    cases.forEach(([args, , code, message], i) => {
      const r = results[i]!;
      expect({ args, code: r.code }).toEqual({ args, code });
      expect(r.stderr).toMatch(message);
      if (code !== 2) expect(r.stdout).toBe('');
    });

    const asJson = await runCli(['--json', 'campaigns', 'resume', String(draft.id)], { env: as(apiKey) });
    expect(asJson.code).toBe(6);
    expect(JSON.parse(asJson.stderr)).toEqual({ error: { code: 'invalid_state', message: 'cannot resume a campaign that is draft' } });
  }, CLI_TEST_TIMEOUT_MS);
});
