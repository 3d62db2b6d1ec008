import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileTemplate, MAX_RENDER_BLOCKS, MAX_RENDER_CHARS } from '../src/campaigns/template.ts';
import { LOCAL_FAILURES_BEFORE_PAUSE } from '../src/engine/localFailures.ts';
import { databaseKinds } from './helpers/db.ts';
import { addAccount, addServer, must, waitForCampaign } from './helpers/fixtures.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';
import { startSmtpPeer, type SmtpPeer } from './helpers/smtpPeer.ts';

/** Three nested loops over a contact's attributes: 200 attributes make 8,000,000 iterations. */
const NESTED_EACH = '{{#each @root.attributes}}{{#each @root.attributes}}{{#each @root.attributes}}x{{/each}}{{/each}}{{/each}}';
const attributes = (n: number, value = 'v') => Object.fromEntries(Array.from({ length: n }, (_, i) => [`a${i}`, value]));
const vars = (attrs: Record<string, unknown>) => ({ name: 'Ann', email: 'ann@rcpt.test', attributes: attrs, unsubscribeUrl: 'https://mp.test/u/t' });

describe('every render runs under a budget of output and work', () => {
  it('stops nested loops and repeated long values with an error naming the field, and renders ordinary loops in full', () => {
    const nested = compileTemplate('text', NESTED_EACH, false);
    expect(() => nested(vars(attributes(200)))).toThrow(/^text: rendering this template for this contact (writes more than [\d,]+ characters|runs more than [\d,]+ blocks)/);
    // No loop at all: one value of 10,000 characters, escaped to 50,000, written 50 times.
    const repeated = compileTemplate('html', '{{attributes.a0}}'.repeat(50), true);
    expect(() => repeated(vars({ a0: '&'.repeat(10_000) }))).toThrow(`html: rendering this template for this contact writes more than ${MAX_RENDER_CHARS.toLocaleString('en')} characters`);
    // {{this}} and block parameters are counted like any other output.
    const self = compileTemplate('text', `{{#each attributes as |v|}}${'{{this}}{{v}}'.repeat(15)}{{/each}}`, false);
    expect(() => self(vars(attributes(10, 'y'.repeat(10_000))))).toThrow(/^text: .* writes more than/);
    const blocks = compileTemplate('text', '{{#each attributes}}{{#each @root.attributes}}{{/each}}{{/each}}', false);
    expect(() => blocks(vars(attributes(200)))).toThrow(`text: rendering this template for this contact runs more than ${MAX_RENDER_BLOCKS.toLocaleString('en')} blocks`);

    const ordinary = compileTemplate('html', '{{#each attributes}}<td>{{@key}}={{this}}</td>{{#each @root.attributes}}.{{/each}}{{/each}}', true);
    const out = ordinary(vars(attributes(99, '<b>')));
    expect(out).toContain('<td>a0=&lt;b&gt;</td>' + '.'.repeat(99));
    expect(out.match(/<td>/g)).toHaveLength(99);
    const table = compileTemplate('html', '{{#each attributes}}{{#if @first}}<tr>{{/if}}<td>{{this}}</td>{{#unless @last}}|{{/unless}}{{/each}}', true);
    expect(table(vars(attributes(200))).match(/<td>/g)).toHaveLength(200);
  });
});

describe.each(databaseKinds)('a template past its budget fails alone (%s)', (kind) => {
  let t: TestMailPilot;
  let peer: SmtpPeer;
  beforeAll(async () => {
    t = await startTestMailPilot(kind);
    peer = await startSmtpPeer();
  });
  afterAll(async () => {
    await t.close();
    await peer.close();
  });

  const listOf = async (key: string, contacts: unknown[]) => {
    const list = await must(t, key, 'POST', '/api/v1/lists', { name: 'wide contacts' });
    expect((await must(t, key, 'POST', `/api/v1/lists/${list.id}/contacts`, { contacts })).added).toBe(contacts.length);
    return list.id as number;
  };

  it('answers a preview or a test send with 422 naming the field, quickly, while another user is answered at once', async () => {
    const attacker = await t.createUser('attacker');
    const bystander = await t.createUser('bystander');
    const accountId = await addAccount(t, attacker.apiKey, await addServer(t, attacker.apiKey, peer.port), 'news@attacker.test');
    const listId = await listOf(attacker.apiKey, [{ email: 'wide@rcpt.test', attributes: attributes(200) }]);
    const campaign = await must(t, attacker.apiKey, 'POST', '/api/v1/campaigns', { name: 'n', listIds: [listId], subject: 'Hi', text: NESTED_EACH });

    const body = { contact: { email: 'a@rcpt.test', attributes: attributes(200) } };
    // The first attempt also pays for compiling and warming up the template code; the attacker repeats it.
    for (let attempt = 1; attempt <= 3; attempt++) {
      const started = performance.now();
      const preview = t.api('POST', `/api/v1/campaigns/${campaign.id}/preview`, { key: attacker.apiKey, body });
      const other = (async () => {
        const asked = performance.now();
        const me = await t.api('GET', '/api/v1/me', { key: bystander.apiKey });
        return { status: me.status, ms: performance.now() - asked };
      })();
      const [refused, answered] = await Promise.all([preview, other]);
      const previewMs = performance.now() - started;
      expect(refused.status).toBe(422);
      expect(refused.body.error).toMatchObject({ code: 'render_limit', message: expect.stringMatching(/^text: rendering this template for this contact /) });
      expect(answered.status).toBe(200);
      expect(previewMs).toBeLessThan(5000);
      if (attempt > 1) expect(answered.ms).toBeLessThan(1000);
    }

    const before = peer.attempts.length;
    const test = await t.api('POST', `/api/v1/campaigns/${campaign.id}/test`, { key: attacker.apiKey, body: { email: 'wide@rcpt.test', accountId } });
    expect(test.status).toBe(422);
    expect(test.body.error.message).toMatch(/^text: rendering this template for this contact /);
    expect(peer.attempts.length).toBe(before);
    // Nothing went out, so nothing was counted against the account.
    const account = await must(t, attacker.apiKey, 'GET', `/api/v1/smtp-accounts/${accountId}`);
    expect(account.usage.sentThisHour).toBe(0);
  });

  it('fails each such message of a campaign with the reason, pauses the campaign after a run of them, and keeps it paused when an account becomes usable', async () => {
    const { apiKey } = await t.createUser('sender');
    const accountId = await addAccount(t, apiKey, await addServer(t, apiKey, peer.port), 'news@sender.test');
    const total = LOCAL_FAILURES_BEFORE_PAUSE * 4;
    const listId = await listOf(
      apiKey,
      Array.from({ length: total }, (_, i) => ({ email: `wide${i}@rcpt.test`, attributes: attributes(200) })),
    );
    const before = peer.attempts.length;
    const id = (await must(t, apiKey, 'POST', '/api/v1/campaigns', { name: 'n', listIds: [listId], subject: 'Hi', text: NESTED_EACH })).id;
    await must(t, apiKey, 'POST', `/api/v1/campaigns/${id}/start`);

    // The pause can come before the failed messages' outcomes have landed on the counters.
    const paused = await waitForCampaign(t, apiKey, id, (c) => c.status === 'paused' && c.failed >= LOCAL_FAILURES_BEFORE_PAUSE, 60_000);
    // Held while the pause was being written: no message failed past the run that paused it.
    expect(paused.failed).toBe(LOCAL_FAILURES_BEFORE_PAUSE);
    expect(paused.pending).toBe(total - LOCAL_FAILURES_BEFORE_PAUSE);
    expect(paused.warnings).toContainEqual(expect.stringMatching(new RegExp(`^paused after ${LOCAL_FAILURES_BEFORE_PAUSE} messages in a row failed for the same reason \\(rendering failed: text: rendering this template`)));
    const failed = await must(t, apiKey, 'GET', `/api/v1/campaigns/${id}/messages?status=failed&limit=1`);
    expect(failed.items[0].lastError).toMatch(/^rendering failed: text: rendering this template for this contact /);
    expect(peer.attempts.length).toBe(before);

    // Switching the account off and on again (what resumes a campaign paused for want of an account) leaves it paused.
    await must(t, apiKey, 'PATCH', `/api/v1/smtp-accounts/${accountId}`, { active: false });
    await must(t, apiKey, 'PATCH', `/api/v1/smtp-accounts/${accountId}`, { active: true });
    await new Promise((r) => setTimeout(r, 300));
    const still = await must(t, apiKey, 'GET', `/api/v1/campaigns/${id}`);
    expect(still).toMatchObject({ status: 'paused', failed: paused.failed, warnings: paused.warnings });

    // Its user can resume it; the engine then pauses it again after the next run of failures.
    expect((await must(t, apiKey, 'POST', `/api/v1/campaigns/${id}/resume`)).status).toBe('running');
    const again = await waitForCampaign(t, apiKey, id, (c) => c.status === 'paused' && c.failed >= 2 * LOCAL_FAILURES_BEFORE_PAUSE, 60_000);
    expect(again).toMatchObject({ failed: 2 * LOCAL_FAILURES_BEFORE_PAUSE, pending: total - 2 * LOCAL_FAILURES_BEFORE_PAUSE });
  });
});
