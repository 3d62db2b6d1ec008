import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PASSWORD_CLEARED_REASON } from '../src/engine/accountHealth.ts';
import { databaseKinds } from './helpers/db.ts';
import { addList, createCampaign, must } from './helpers/fixtures.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';
import { startRemoteAuthListener, type RemoteAuthListener } from './helpers/netns.ts';
import { startSmtpPeer, type SmtpPeer } from './helpers/smtpPeer.ts';

/**
 * Issue 12, item 4: whoever holds a user's API key must not be able to have the stored SMTP password
 * sent to a listener of their choosing, and a password never crosses the network in cleartext
 * unless the operator allows it.
 */

const PASSWORD = 'pw-of-ann-7c1e';
const DEADLINE_MS = 3_000;

let remote: RemoteAuthListener | undefined;
beforeAll(async () => {
  remote = await startRemoteAuthListener();
});
afterAll(() => remote?.close());

describe.each(databaseKinds)('a stored password only goes where its owner sent it (%s)', (kind) => {
  let t: TestMailPilot;
  let legit: SmtpPeer;
  let thief: SmtpPeer;

  beforeAll(async () => {
    t = await startTestMailPilot(kind, { config: { testSendTimeoutMs: DEADLINE_MS } });
    legit = await startSmtpPeer({ users: { ann: PASSWORD } });
    // Offers AUTH and records whatever it is given.
    thief = await startSmtpPeer({ users: {} });
  });
  afterAll(async () => {
    await t?.close();
    await legit?.close();
    await thief?.close();
  });

  /** A user with a campaign to test-send and one account with a password on a server at `host:port`. */
  async function setUp(host: string, port: number, instance = t) {
    const { apiKey: key } = await instance.createUser();
    const server = await must(instance, key, 'POST', '/api/v1/smtp-servers', { name: 'mail', host, port, security: 'none' });
    const account = await must(instance, key, 'POST', '/api/v1/smtp-accounts', {
      serverId: server.id,
      email: 'ann@sender.test',
      username: 'ann',
      password: PASSWORD,
      hourlyLimit: 0,
      dailyLimit: 0,
    });
    const list = await must(instance, key, 'POST', '/api/v1/lists', { name: 'l' });
    const campaignId = await createCampaign(instance, key, [list.id]);
    const testSend = () => instance.api('POST', `/api/v1/campaigns/${campaignId}/test`, { key, body: { email: 'x@rcpt.test', accountId: account.id } });
    const accountNow = () => must(instance, key, 'GET', `/api/v1/smtp-accounts/${account.id}`);
    return { key, serverId: server.id as number, accountId: account.id as number, testSend, accountNow };
  }

  it("changing a server's host, port or security clears its accounts' passwords, so a listener on the new port records no AUTH", async () => {
    const { key, serverId, accountId, testSend, accountNow } = await setUp('127.0.0.1', legit.port);
    expect(await testSend()).toMatchObject({ status: 200 });
    expect(legit.auths).toContainEqual({ username: 'ann', password: PASSWORD });

    // Changes that keep the destination keep the password.
    for (const change of [{ name: 'renamed' }, { port: legit.port }, { host: '127.0.0.1', security: 'none' }, { maxConnections: 3 }]) {
      const patched = await must(t, key, 'PATCH', `/api/v1/smtp-servers/${serverId}`, change);
      expect(patched.passwordsCleared, JSON.stringify(change)).toEqual([]);
      expect((await accountNow()).hasPassword).toBe(true);
    }
    // Each change of destination clears it: the owner gives it again for the new one.
    for (const change of [{ host: 'localhost' }, { security: 'starttls' }, { host: '127.0.0.1', security: 'none', port: thief.port }]) {
      const patched = await must(t, key, 'PATCH', `/api/v1/smtp-servers/${serverId}`, change);
      expect(patched.passwordsCleared, JSON.stringify(change)).toEqual([accountId]);
      const account = await accountNow();
      expect(account).toMatchObject({ hasPassword: false, health: { state: 'disabled', reason: PASSWORD_CLEARED_REASON } });
      if (change.port === undefined) await must(t, key, 'PATCH', `/api/v1/smtp-accounts/${accountId}`, { password: PASSWORD });
    }

    expect(await testSend()).toEqual({
      status: 409,
      body: { error: { code: 'account_disabled', message: `this SMTP account is disabled: ${PASSWORD_CLEARED_REASON}` } },
    });
    expect(thief.auths).toEqual([]);
    expect(thief.connections).toBe(0);

    // Given again, it is the owner's choice to send it there.
    await must(t, key, 'PATCH', `/api/v1/smtp-accounts/${accountId}`, { password: PASSWORD });
    expect((await accountNow()).health).toEqual({ state: 'healthy' });
  });

  it('moving an account with a password to another server needs the password again', async () => {
    const { key, serverId, accountId, accountNow } = await setUp('127.0.0.1', legit.port);
    const other = await must(t, key, 'POST', '/api/v1/smtp-servers', { name: 'other', host: '127.0.0.1', port: thief.port, security: 'none' });

    const refused = await t.api('PATCH', `/api/v1/smtp-accounts/${accountId}`, { key, body: { serverId: other.id } });
    expect(refused).toEqual({
      status: 422,
      body: { error: { code: 'invalid_field', message: 'password: moving the account to another server needs its password again (or null to use that server without one)' } },
    });
    expect(await accountNow()).toMatchObject({ serverId, hasPassword: true });

    expect(await must(t, key, 'PATCH', `/api/v1/smtp-accounts/${accountId}`, { serverId: other.id, password: 'the-other-one' })).toMatchObject({
      serverId: other.id,
      hasPassword: true,
    });
    expect(await must(t, key, 'PATCH', `/api/v1/smtp-accounts/${accountId}`, { serverId, password: null })).toMatchObject({ serverId, hasPassword: false });
    // Without a password there is nothing to follow it.
    expect(await must(t, key, 'PATCH', `/api/v1/smtp-accounts/${accountId}`, { serverId: other.id })).toMatchObject({ serverId: other.id });
    expect(thief.auths).toEqual([]);
  });

  it('AUTH without TLS goes only to this machine, unless the operator allows it', async () => {
    if (!remote) throw new Error('this test needs an SMTP peer on a non-loopback address: see the NOTICE above');
    const before = remote.auths.length;
    const messagesBefore = remote.messages;
    const { accountId, testSend, accountNow, key } = await setUp(remote.host, remote.port);
    const refusal = `the account's password is only sent over an encrypted connection, and the server at ${remote.host}:${remote.port} is not on this machine: set the server's security to starttls or tls`;
    expect(await testSend()).toEqual({ status: 409, body: { error: { code: 'plaintext_auth_refused', message: `the test message was not sent: ${refusal}` } } });
    // The engine refuses the same way, and the account says why.
    const list = await addList(t, key, 1, 'plain.test', `p${accountId}-`);
    await must(t, key, 'POST', `/api/v1/campaigns/${await createCampaign(t, key, [list])}/start`);
    await expect.poll(async () => (await accountNow()).health, { timeout: 30_000, interval: 100 }).toEqual({ state: 'disabled', reason: refusal });
    expect(remote.auths.length).toBe(before);
    expect(remote.messages).toBe(messagesBefore);

    // The operator allows it: the same account's password goes there.
    const allowing = await startTestMailPilot(kind, { engine: false, config: { smtpPlaintextAuth: 'always', testSendTimeoutMs: DEADLINE_MS } });
    try {
      const { testSend: send } = await setUp(remote.host, remote.port, allowing);
      expect((await send()).status).toBe(200);
      expect(remote.auths.length).toBe(before + 1);
    } finally {
      await allowing.close();
    }
    expect(remote.auths.at(-1)).toEqual({ username: 'ann', password: PASSWORD });
  });
});
