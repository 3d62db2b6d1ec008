import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { reencryptPasswords, RotationError, rotateSecret } from '../src/cli/rotateSecret.ts';
import { FakeClock } from '../src/clock.ts';
import { loadConfig, type Config } from '../src/config.ts';
import { mailboxPassword } from '../src/db/accountMailboxes.ts';
import { accountDkimPem, accountOAuthSecret, accountPassword, sealAccountPassword, sealDkimKey, sealOAuthSecret } from '../src/db/smtpAccounts.ts';
import { createLogger } from '../src/log.ts';
import { loadSecrets, newSecretKey } from '../src/secrets.ts';
import { startMailPilot, type MailPilot } from '../src/server.ts';
import { databaseKinds, freshDatabase, type TestDatabase } from './helpers/db.ts';
import { DKIM_DOMAIN, DKIM_SELECTOR, dkimKeyPair, verifyDkim } from './helpers/dkim.ts';
import { startSmtpPeer, type SmtpPeer } from './helpers/smtpPeer.ts';

const NOW = new Date('2026-03-02T10:00:00Z');
const PASSWORD = 'Corr3ct-Horse-Battery';

/** A MailPilot on a given database and data dir, with its log lines kept. */
async function start(db: TestDatabase, config: Config, logLines: string[] = []): Promise<MailPilot & { call: typeof call }> {
  const sink = new Writable({
    write(chunk, _enc, done) {
      logLines.push(chunk.toString());
      done();
    },
  });
  const mp = await startMailPilot({ config, api: true, engine: true, db: db.db, clock: new FakeClock(NOW.toISOString()), log: createLogger('debug', sink) });
  async function call(method: string, path: string, key: string, body?: unknown): Promise<{ status: number; text: string; json: any }> {
    const res = await fetch(mp.url + path, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let json: any;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, text, json };
  }
  return Object.assign(mp, { call });
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe.each(databaseKinds)('secrets (%s)', (kind) => {
  let db: TestDatabase;
  let dataDir: string;
  let config: Config;
  let peer: SmtpPeer;
  beforeAll(async () => {
    peer = await startSmtpPeer({ users: { sender: PASSWORD } });
  });
  afterAll(() => peer.close());
  beforeEach(async () => {
    db = await freshDatabase(kind);
    dataDir = mkdtempSync(join(tmpdir(), 'mailpilot-secrets-'));
    config = { ...loadConfig({}), port: 0, dataDir, adminKey: 'admin-key-of-the-test', logLevel: 'debug' };
  });
  afterEach(async () => {
    await db.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  /** A user whose campaign of one recipient goes out through an account that logs in with PASSWORD. */
  async function sendOne(mp: Awaited<ReturnType<typeof start>>, key: string, accountId: number, listId: number, name: string) {
    const campaign = await mp.call('POST', '/api/v1/campaigns', key, { name, listIds: [listId], subject: name, text: 'Hi' });
    const before = peer.messages.length;
    expect((await mp.call('POST', `/api/v1/campaigns/${campaign.json.id}/start`, key)).status).toBe(200);
    await waitFor('the message', async () => (peer.messages.length > before ? true : undefined));
    await waitFor('completion', async () => ((await mp.call('GET', `/api/v1/campaigns/${campaign.json.id}`, key)).json.status === 'completed' ? true : undefined));
    expect(peer.messages.at(-1)!.user).toBe('sender');
    return { accountId, message: peer.messages.at(-1)! };
  }

  async function setUp(mp: Awaited<ReturnType<typeof start>>) {
    const user = (await mp.call('POST', '/api/v1/users', config.adminKey!, { name: 'ann', email: 'ann@example.test' })).json;
    const server = (await mp.call('POST', '/api/v1/smtp-servers', user.apiKey, { name: 'peer', host: '127.0.0.1', port: peer.port, security: 'none' })).json;
    const account = (
      await mp.call('POST', '/api/v1/smtp-accounts', user.apiKey, {
        serverId: server.id,
        email: 'news@ann.test',
        username: 'sender',
        password: PASSWORD,
        hourlyLimit: 100,
        dailyLimit: 100,
      })
    ).json;
    const list = (await mp.call('POST', '/api/v1/lists', user.apiKey, { name: 'l' })).json;
    await mp.call('POST', `/api/v1/lists/${list.id}/contacts`, user.apiKey, { contacts: [{ email: 'reader@example.test' }] });
    return { key: user.apiKey as string, accountId: account.id as number, listId: list.id as number };
  }

  const storedPassword = async (accountId: number) =>
    (await db.db.query<{ enc: string }>('SELECT password_enc AS enc FROM smtp_accounts WHERE id = $1', [accountId]))[0]!.enc;
  const storedDkimKey = async (accountId: number) =>
    (await db.db.query<{ enc: string }>('SELECT dkim_key_enc AS enc FROM smtp_accounts WHERE id = $1', [accountId]))[0]!.enc;

  /** Gives the account a DKIM key; returns the key pair. */
  async function addDkim(mp: Awaited<ReturnType<typeof start>>, key: string, accountId: number) {
    const pair = dkimKeyPair(1024);
    const dkim = { domain: DKIM_DOMAIN, selector: DKIM_SELECTOR, privateKey: pair.privateKey };
    expect((await mp.call('PATCH', `/api/v1/smtp-accounts/${accountId}`, key, { dkim })).status).toBe(200);
    return pair;
  }

  it('rotates the key in the data dir: passwords and DKIM keys move to the new key, sending, signing and old unsubscribe links keep working', async () => {
    let mp = await start(db, config);
    const { key, accountId, listId } = await setUp(mp);
    const dkim = await addDkim(mp, key, accountId);
    const { message } = await sendOne(mp, key, accountId, listId, 'before');
    expect((await verifyDkim(message.raw, dkim.txt)).result).toBe('pass');
    const unsubscribePath = new URL(/<(.*)>/.exec(message.headers.get('list-unsubscribe')!)![1]!).pathname;
    await mp.close();

    const oldKey = readFileSync(join(dataDir, 'secret.key'), 'utf8').trim();
    const sealedBefore = await storedPassword(accountId);
    const outcome = await rotateSecret(config, db.db, undefined, NOW);
    expect(outcome).toMatchObject({ reencrypted: 1, alreadyNew: 0 });
    const newKey = readFileSync(join(dataDir, 'secret.key'), 'utf8').trim();
    expect(newKey).not.toBe(oldKey);
    expect(readFileSync(join(dataDir, 'secret.key.previous'), 'utf8').trim()).toBe(oldKey);
    expect(existsSync(join(dataDir, 'secret.key.next'))).toBe(false);
    const sealedAfter = await storedPassword(accountId);
    expect(sealedAfter).not.toBe(sealedBefore);
    expect(accountPassword(Buffer.from(newKey, 'hex'), accountId, sealedAfter)).toBe(PASSWORD);
    expect(() => accountPassword(Buffer.from(oldKey, 'hex'), accountId, sealedAfter)).toThrow();
    // The DKIM key moved in the same transaction.
    const dkimAfter = await storedDkimKey(accountId);
    expect(accountDkimPem(Buffer.from(newKey, 'hex'), accountId, dkimAfter)).toBe(dkim.privateKey);
    expect(() => accountDkimPem(Buffer.from(oldKey, 'hex'), accountId, dkimAfter)).toThrow();

    mp = await start(db, config);
    try {
      const after = await sendOne(mp, key, accountId, listId, 'after');
      expect(after.message.headers.get('dkim-signature')).toContain(`d=${DKIM_DOMAIN}`);
      expect((await verifyDkim(after.message.raw, dkim.txt)).result).toBe('pass');
      const unsubscribed = await fetch(mp.url + unsubscribePath, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'List-Unsubscribe=One-Click' });
      expect(unsubscribed.status).toBe(200);
      const suppressions = await mp.call('GET', '/api/v1/suppressions', key);
      expect(suppressions.json.items).toEqual([expect.objectContaining({ email: 'reader@example.test', reason: 'unsubscribed' })]);
    } finally {
      await mp.close();
    }
  });

  it('finishes an interrupted rotation, whichever step it stopped at, and refuses to start in between', async () => {
    const mp = await start(db, config);
    const { accountId } = await setUp(mp);
    await mp.close();
    const oldKey = Buffer.from(readFileSync(join(dataDir, 'secret.key'), 'utf8').trim(), 'hex');
    const nextKey = newSecretKey();
    // Stopped after choosing the new key and moving the passwords, before swapping the files.
    writeFileSync(join(dataDir, 'secret.key.next'), nextKey.toString('hex'));
    await reencryptPasswords(db.db, oldKey, nextKey, NOW);
    expect(() => loadSecrets(config)).toThrow(/rotate-secret/);

    const outcome = await rotateSecret(config, db.db, undefined, NOW);
    expect(outcome).toMatchObject({ reencrypted: 0, alreadyNew: 1 });
    expect(loadSecrets(config).secretKey.equals(nextKey)).toBe(true);
    expect(loadSecrets(config).previousKeys.map((k) => k.toString('hex'))).toEqual([oldKey.toString('hex')]);
    expect(accountPassword(nextKey, accountId, await storedPassword(accountId))).toBe(PASSWORD);
  });

  it('rotates a key given in the environment, is safe to run twice, and changes nothing when it cannot finish', async () => {
    const k1 = newSecretKey().toString('hex');
    const k2 = newSecretKey().toString('hex');
    const envConfig = { ...config, secretKey: k1 };
    const mp = await start(db, envConfig);
    const { accountId, key } = await setUp(mp);
    // The account's mailbox password is sealed too, and moves with the SMTP password.
    const imap = { host: '127.0.0.1', port: 1, security: 'none', password: 'Mailbox-Pass' };
    expect((await mp.call('PATCH', `/api/v1/smtp-accounts/${accountId}`, key, { imap })).status).toBe(200);
    await mp.close();

    await expect(rotateSecret(envConfig, db.db, undefined, NOW)).rejects.toThrow(/MAILPILOT_NEW_SECRET_KEY/);
    // A worker still holds the account: MailPilot is running somewhere.
    await db.db.query(`UPDATE smtp_accounts SET lease_owner = 'w1', lease_expires_at = $2 WHERE id = $1`, [accountId, new Date(NOW.getTime() + 30_000)]);
    await expect(rotateSecret(envConfig, db.db, k2, NOW)).rejects.toBeInstanceOf(RotationError);
    await db.db.query('UPDATE smtp_accounts SET lease_owner = NULL, lease_expires_at = NULL');

    // A password under neither key (a row from elsewhere) stops the rotation before anything changes.
    const [second] = await db.db.query<{ id: number }>(
      `INSERT INTO smtp_accounts (user_id, server_id, email, hourly_limit, daily_limit, created_at)
       SELECT user_id, server_id, 'other@ann.test', 1, 1, created_at FROM smtp_accounts WHERE id = $1 RETURNING id`,
      [accountId],
    );
    await db.db.query('UPDATE smtp_accounts SET password_enc = $2 WHERE id = $1', [second!.id, sealAccountPassword(newSecretKey(), second!.id, 'x')]);
    const sealed = await storedPassword(accountId);
    await expect(rotateSecret(envConfig, db.db, k2, NOW)).rejects.toThrow(`SMTP account ${second!.id}`);
    expect(await storedPassword(accountId)).toBe(sealed);
    await db.db.query('DELETE FROM smtp_accounts WHERE id = $1', [second!.id]);

    expect(await rotateSecret(envConfig, db.db, k2, NOW)).toMatchObject({ reencrypted: 2, alreadyNew: 0 });
    expect(await rotateSecret(envConfig, db.db, k2, NOW)).toMatchObject({ reencrypted: 0, alreadyNew: 2 });
    expect(accountPassword(Buffer.from(k2, 'hex'), accountId, await storedPassword(accountId))).toBe(PASSWORD);
    const [mailbox] = await db.db.query<{ enc: string }>('SELECT password_enc AS enc FROM account_mailboxes WHERE account_id = $1', [accountId]);
    expect(mailboxPassword(Buffer.from(k2, 'hex'), accountId, mailbox!.enc)).toBe('Mailbox-Pass');
  });

  it('moves OAuth2 client secrets and refresh tokens to the new key with the passwords', async () => {
    const mp = await start(db, config);
    const { key, accountId } = await setUp(mp);
    const server = (await mp.call('GET', `/api/v1/smtp-accounts/${accountId}`, key)).json.serverId;
    const oauth = { type: 'oauth2', clientId: 'client', clientSecret: 'client-secret', refreshToken: 'refresh-token', tokenUrl: 'https://oauth2.googleapis.com/token' };
    const created = await mp.call('POST', '/api/v1/smtp-accounts', key, { serverId: server, email: 'o@ann.test', hourlyLimit: 1, dailyLimit: 1, auth: oauth });
    expect(created.status).toBe(201);
    await mp.close();
    const oldKey = Buffer.from(readFileSync(join(dataDir, 'secret.key'), 'utf8').trim(), 'hex');
    const newKey = newSecretKey();
    expect(await reencryptPasswords(db.db, oldKey, newKey, NOW)).toEqual({ reencrypted: 2, alreadyNew: 0 });
    const [row] = await db.db.query<{ secret: string; refresh: string }>(
      'SELECT oauth_client_secret_enc AS secret, oauth_refresh_token_enc AS refresh FROM smtp_accounts WHERE id = $1',
      [created.json.id],
    );
    expect(accountOAuthSecret(newKey, created.json.id, 'client_secret', row!.secret)).toBe('client-secret');
    expect(accountOAuthSecret(newKey, created.json.id, 'refresh_token', row!.refresh)).toBe('refresh-token');
    expect(() => accountOAuthSecret(oldKey, created.json.id, 'refresh_token', row!.refresh)).toThrow();
    expect(accountPassword(newKey, accountId, await storedPassword(accountId))).toBe(PASSWORD);
    // A refresh token under neither key stops it, naming the account.
    await db.db.query('UPDATE smtp_accounts SET oauth_refresh_token_enc = $2 WHERE id = $1', [
      created.json.id,
      sealOAuthSecret(newSecretKey(), created.json.id, 'refresh_token', 'x'),
    ]);
    await expect(reencryptPasswords(db.db, newKey, newSecretKey(), NOW)).rejects.toThrow(`SMTP account ${created.json.id}`);
  });

  it('moves a DKIM key an earlier rotation left under the old key; one under neither key refuses, naming it, and leaves secrets and key files as they were', async () => {
    let mp = await start(db, config);
    const { key, accountId } = await setUp(mp);
    const dkim = await addDkim(mp, key, accountId);
    await mp.close();
    const k1 = readFileSync(join(dataDir, 'secret.key'), 'utf8').trim();
    const k2 = newSecretKey();
    // A rotation before DKIM keys were included: the password under k2, the DKIM key still under k1.
    await db.db.query('UPDATE smtp_accounts SET password_enc = $2 WHERE id = $1', [accountId, sealAccountPassword(k2, accountId, PASSWORD)]);
    const password = await storedPassword(accountId);
    // Run once from k1 to k2 (keys in the environment): only what is left under k1 moves.
    expect(await rotateSecret({ ...config, secretKey: k1 }, db.db, k2.toString('hex'), NOW)).toMatchObject({ reencrypted: 1, alreadyNew: 0 });
    expect(await storedPassword(accountId)).toBe(password);
    expect(accountDkimPem(k2, accountId, await storedDkimKey(accountId))).toBe(dkim.privateKey);

    // A DKIM key under neither key (a row from elsewhere): refused before anything changes.
    writeFileSync(join(dataDir, 'secret.key'), `${k2.toString('hex')}\n`);
    await db.db.query('UPDATE smtp_accounts SET dkim_key_enc = $2 WHERE id = $1', [accountId, sealDkimKey(newSecretKey(), accountId, dkim.privateKey)]);
    const sealed = { password: await storedPassword(accountId), dkim: await storedDkimKey(accountId) };
    await expect(rotateSecret(config, db.db, undefined, NOW)).rejects.toThrow(
      `the DKIM private key of SMTP account ${accountId} opens with neither the current nor the new key; nothing was changed. Give the account that secret again (PATCH /api/v1/smtp-accounts/${accountId})`,
    );
    expect({ password: await storedPassword(accountId), dkim: await storedDkimKey(accountId) }).toEqual(sealed);
    // The key files too: MailPilot starts on k2, and the account's DKIM key can be given again.
    expect(existsSync(join(dataDir, 'secret.key.next'))).toBe(false);
    expect(loadSecrets(config).secretKey.equals(k2)).toBe(true);
    mp = await start(db, config);
    try {
      await addDkim(mp, key, accountId);
    } finally {
      await mp.close();
    }
    expect(await rotateSecret(config, db.db, undefined, NOW)).toMatchObject({ reencrypted: 1, alreadyNew: 0 });
  });

  it('never shows a password or key in replies or logs, even when the SMTP login fails', async () => {
    const logLines: string[] = [];
    const mp = await start(db, config, logLines);
    const replies: string[] = [];
    const record = async (p: ReturnType<typeof mp.call>) => {
      const r = await p;
      replies.push(r.text);
      return r;
    };
    try {
      const { key, accountId, listId } = await setUp(mp);
      const secretsToHide = [
        PASSWORD,
        Buffer.from(`\0sender\0${PASSWORD}`).toString('base64'),
        Buffer.from(PASSWORD).toString('base64'),
        config.adminKey!,
        key,
        mp.ctx.secrets.secretKey.toString('hex'),
        mp.ctx.secrets.secretKey.toString('base64'),
        await storedPassword(accountId),
      ];
      // A wrong password: the peer refuses the login, the engine disables the account and logs why.
      await record(mp.call('PATCH', `/api/v1/smtp-accounts/${accountId}`, key, { password: `${PASSWORD}-wrong` }));
      secretsToHide.push(`${PASSWORD}-wrong`, Buffer.from(`\0sender\0${PASSWORD}-wrong`).toString('base64'));
      const campaign = await record(mp.call('POST', '/api/v1/campaigns', key, { name: 'c', listIds: [listId], subject: 's', text: 't' }));
      await record(mp.call('POST', `/api/v1/campaigns/${campaign.json.id}/start`, key));
      const disabled = await waitFor('the account to be disabled', async () => {
        const r = await mp.call('GET', `/api/v1/smtp-accounts/${accountId}`, key);
        return r.json.health.state === 'disabled' ? r : undefined;
      });
      replies.push(disabled.text);
      await record(mp.call('PATCH', `/api/v1/smtp-accounts/${accountId}`, key, { password: `${PASSWORD}\n` }));
      await record(mp.call('POST', '/api/v1/smtp-accounts', key, { serverId: 999, email: 'x@ann.test', password: PASSWORD, hourlyLimit: 1, dailyLimit: 1 }));
      for (const path of ['/api/v1/smtp-accounts', '/api/v1/stats', `/api/v1/campaigns/${campaign.json.id}/messages`, '/api/v1/me/keys', '/metrics']) {
        await record(mp.call('GET', path, key));
      }
      await record(mp.call('GET', '/api/v1/stats', config.adminKey!));
      const metrics = await fetch(mp.url + '/metrics');
      replies.push(await metrics.text());

      expect(logLines.length).toBeGreaterThan(0);
      const everything = [...replies, ...logLines].join('\n');
      for (const secret of secretsToHide) expect(everything).not.toContain(secret);
    } finally {
      await mp.close();
    }
  });
});
