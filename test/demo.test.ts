import { describe, expect, it } from 'vitest';
import { runCli, spawnCli } from './helpers/cli.ts';

// The demo always runs on its own in-memory embedded database, so there is no database kind to vary.
const DEMO_TIMEOUT_MS = 300_000;

describe('mailpilot demo runs a whole campaign by itself', () => {
  it('sends 2,000 generated contacts through 5 limited accounts to its sink, then serves the dashboard until Ctrl-C', async () => {
    const child = spawnCli(['demo', '--port', '0']);
    child.stdin!.end();
    let stdout = '';
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (d: Buffer) => {
        stdout += d;
        if (stdout.includes('Press Ctrl-C')) resolve();
      });
      void exited.then((code) => reject(new Error(`demo exited early (${code}): ${stdout}\n${stderr}`)));
    });

    expect(stdout).toMatch(/^MailPilot demo: SMTP sink on 127\.0\.0\.1:\d+, API and dashboard on http:\/\/127\.0\.0\.1:\d+\/ \(data in memory\)$/m);
    expect(stdout).toContain('Created a user, 5 SMTP accounts (500/hour, 2000/day each), a list of 2000 contacts and campaign 1.');
    expect(stdout).toContain('Demo campaign 2,000/2,000 (100%) sent 2,000 failed 0 · completed');
    expect(stdout).toContain('Campaign 1 completed: 2,000 sent, 0 failed, 0 suppressed, 0 cancelled.');
    expect(stdout).toContain('The sink received 2000 messages.');
    const dashboard = /^See it in the dashboard: (http:\/\/127\.0\.0\.1:\d+)\/#\/campaigns\/1$/m.exec(stdout)?.[1];
    const apiKey = /^Sign in with the demo user's API key: (mp_\S+)$/m.exec(stdout)?.[1];
    const adminKey = /^\(The admin key, for the system view and \/metrics: (mp_\S+)\)$/m.exec(stdout)?.[1];
    expect(dashboard && apiKey && adminKey).toBeTruthy();

    // What it printed works: the dashboard is served, the key signs in, the campaign is there.
    const page = await fetch(`${dashboard}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<title>MailPilot</title>');
    const campaign = await (await fetch(`${dashboard}/api/v1/campaigns/1`, { headers: { authorization: `Bearer ${apiKey}` } })).json();
    expect(campaign).toMatchObject({ status: 'completed', total: 2000, sent: 2000 });
    const accounts = await (await fetch(`${dashboard}/api/v1/smtp-accounts`, { headers: { authorization: `Bearer ${apiKey}` } })).json();
    expect(accounts.items).toHaveLength(5);
    for (const a of accounts.items) expect(a.usage).toMatchObject({ hourlyLimit: 500, dailyLimit: 2000 });
    expect(accounts.items.reduce((n: number, a: any) => n + a.usage.sentThisHour, 0)).toBe(2000);
    const metrics = await fetch(`${dashboard}/metrics`, { headers: { authorization: `Bearer ${adminKey}` } });
    expect(await metrics.text()).toMatch(/^mailpilot_campaigns\{status="completed",role="serve"\} 1$/m);

    child.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(stderr).toBe('');
  }, DEMO_TIMEOUT_MS);

  it('with --exit --json, exits 0 after a completed run and reports it as JSON', async () => {
    const r = await runCli(['--json', 'demo', '--port', '0', '--contacts', '50', '--rate', '0', '--exit']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    const report = lines.at(-1);
    expect(report).toMatchObject({ sinkReceived: 50, campaign: { id: 1, status: 'completed', total: 50, sent: 50, pending: 0 } });
    expect(report.dashboard).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/#\/campaigns\/1$/);
    expect(report.apiKey).toMatch(/^mp_/);
    // The lines before it are the campaign as it progressed.
    expect(lines.slice(0, -1).every((c) => c.id === 1 && typeof c.sent === 'number')).toBe(true);
  }, DEMO_TIMEOUT_MS);
});
