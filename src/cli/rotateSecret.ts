import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import type { Config } from '../config.ts';
import { systemClock } from '../clock.ts';
import { openDatabase, type Database } from '../db/database.ts';
import { migrate } from '../db/migrate.ts';
import { liveMailboxLeaseCount, lockSealedMailboxPasswords, mailboxPassword, sealMailboxPassword, storeSealedMailboxPasswords } from '../db/accountMailboxes.ts';
import { liveLeaseCount, lockSealedPasswords, storeSealedPasswords, type SealedPassword } from '../db/sealedPasswords.ts';
import { accountDkimPem, accountOAuthSecret, accountPassword, sealAccountPassword, sealDkimKey, sealOAuthSecret } from '../db/smtpAccounts.ts';
import { newSecretKey, parseSecretKey, secretFiles } from '../secrets.ts';

/**
 * `mailpilot rotate-secret`: moves every stored SMTP password, OAuth2 secret, DKIM private key and
 * mailbox password to a new MAILPILOT_SECRET_KEY.
 *
 * Every process must be stopped first (a running one would keep reading passwords with the old
 * key), so it refuses while a worker holds an account. The secrets change in one transaction: all
 * under the old key or all under the new one. Running it again is always safe: a secret that
 * already opens with the new key is left as it is, which is how an interrupted rotation finishes.
 *
 * With the key in the data dir, the new key is written to secret.key.next before the database
 * changes (so it cannot be lost), and replaces secret.key after; the old key is appended to
 * secret.key.previous, where only unsubscribe links are still checked against it. With the key in
 * the environment, the new key comes from MAILPILOT_NEW_SECRET_KEY and the operator swaps the
 * variables.
 */

export class RotationError extends Error {}

export interface RotationOutcome {
  /** Accounts and mailboxes whose secrets moved to the new key. */
  reencrypted: number;
  /** Those whose secrets an earlier, interrupted run had already moved. */
  alreadyNew: number;
  /** What the operator does next. */
  instructions: string;
}

/**
 * Re-encrypts every stored secret (accounts' passwords, OAuth2 secrets and DKIM keys, mailbox
 * passwords) from `oldKey` to `newKey`, in one transaction. Counts accounts and mailboxes. Throws a
 * RotationError, having changed nothing, while a worker holds an account or when a secret opens with
 * neither key.
 */
export async function reencryptPasswords(db: Database, oldKey: Buffer, newKey: Buffer, now: Date): Promise<Omit<RotationOutcome, 'instructions'>> {
  const leased = (await liveLeaseCount(db, now)) + (await liveMailboxLeaseCount(db, now));
  if (leased > 0) {
    throw new RotationError(`${leased} SMTP account(s) or mailbox(es) are held by a running MailPilot process: stop every MailPilot process first`);
  }
  return db.transaction(async (tx) => {
    const changed: SealedPassword[] = [];
    let alreadyNew = 0;
    for (const row of await lockSealedPasswords(tx)) {
      const next = resealed(oldKey, newKey, row);
      if (next) changed.push(next);
      else alreadyNew++;
    }
    await storeSealedPasswords(tx, changed);
    // The accounts' mailbox (IMAP) passwords, the same way.
    const mailboxes: { id: number; passwordEnc: string }[] = [];
    for (const row of await lockSealedMailboxPasswords(tx)) {
      const opens = (key: Buffer) => {
        try {
          return mailboxPassword(key, row.id, row.passwordEnc);
        } catch {
          return undefined;
        }
      };
      if (opens(newKey) !== undefined) {
        alreadyNew++;
        continue;
      }
      const password = opens(oldKey);
      if (password === undefined) {
        throw new RotationError(`the mailbox password of SMTP account ${row.id} opens with neither the current nor the new key; nothing was changed`);
      }
      mailboxes.push({ id: row.id, passwordEnc: sealMailboxPassword(newKey, row.id, password) });
    }
    await storeSealedMailboxPasswords(tx, mailboxes);
    return { reencrypted: changed.length + mailboxes.length, alreadyNew };
  });
}

/** A configured key, or a RotationError that names where it came from (never the value). */
function keyFrom(value: string, source: string): Buffer {
  try {
    return parseSecretKey(value, source);
  } catch (err) {
    throw new RotationError((err as Error).message);
  }
}

/** Each secret of an account: what a refusal calls it, how to open it and how to seal it again. */
const SECRETS = [
  { field: 'passwordEnc', name: 'SMTP password', open: accountPassword, seal: sealAccountPassword },
  {
    field: 'oauthClientSecretEnc',
    name: 'OAuth2 client secret',
    open: (k: Buffer, id: number, v: string) => accountOAuthSecret(k, id, 'client_secret', v),
    seal: (k: Buffer, id: number, v: string) => sealOAuthSecret(k, id, 'client_secret', v),
  },
  {
    field: 'oauthRefreshTokenEnc',
    name: 'OAuth2 refresh token',
    open: (k: Buffer, id: number, v: string) => accountOAuthSecret(k, id, 'refresh_token', v),
    seal: (k: Buffer, id: number, v: string) => sealOAuthSecret(k, id, 'refresh_token', v),
  },
  { field: 'dkimKeyEnc', name: 'DKIM private key', open: accountDkimPem, seal: sealDkimKey },
] as const;

/** A secret's plaintext under `key`, or undefined when it does not open with it. */
function opened(secret: (typeof SECRETS)[number], key: Buffer, id: number, sealed: string): string | undefined {
  try {
    return secret.open(key, id, sealed);
  } catch {
    return undefined;
  }
}

/**
 * The account's secrets with every one under `oldKey` sealed again under `newKey`, or undefined when
 * all of them open with `newKey` already. Each secret is taken on its own, so one an earlier rotation
 * left behind (DKIM keys were not moved before) moves now. Throws a RotationError naming the secret
 * when one opens with neither key.
 */
function resealed(oldKey: Buffer, newKey: Buffer, row: SealedPassword): SealedPassword | undefined {
  const next = { ...row };
  let changed = false;
  for (const s of SECRETS) {
    const sealed = row[s.field];
    if (sealed === null || opened(s, newKey, row.id, sealed) !== undefined) continue;
    const plain = opened(s, oldKey, row.id, sealed);
    if (plain === undefined) {
      throw new RotationError(
        `the ${s.name} of SMTP account ${row.id} opens with neither the current nor the new key; nothing was changed. ` +
          `Give the account that secret again (PATCH /api/v1/smtp-accounts/${row.id}), then run rotate-secret again`,
      );
    }
    next[s.field] = s.seal(newKey, row.id, plain);
    changed = true;
  }
  return changed ? next : undefined;
}

/** Writes a secret file so that it is either wholly there, on disk, or not there at all. */
function writeSecretFile(path: string, content: string): void {
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, content);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

export async function rotateSecret(config: Config, db: Database, newKeyText: string | undefined, now: Date): Promise<RotationOutcome> {
  if (config.secretKey) {
    if (!newKeyText) {
      throw new RotationError('MAILPILOT_SECRET_KEY is set, so give the new key as MAILPILOT_NEW_SECRET_KEY (e.g. from `openssl rand -hex 32`)');
    }
    const oldKey = keyFrom(config.secretKey, 'MAILPILOT_SECRET_KEY');
    const newKey = keyFrom(newKeyText, 'MAILPILOT_NEW_SECRET_KEY');
    const outcome = await reencryptPasswords(db, oldKey, newKey, now);
    return {
      ...outcome,
      instructions:
        'Now give every MailPilot process MAILPILOT_SECRET_KEY = the value of MAILPILOT_NEW_SECRET_KEY, and add the old ' +
        'MAILPILOT_SECRET_KEY to MAILPILOT_PREVIOUS_SECRET_KEYS (comma-separated) so unsubscribe links in mail already sent keep working.',
    };
  }

  const files = secretFiles(config.dataDir);
  if (!existsSync(files.secretKey)) throw new RotationError(`${files.secretKey} does not exist: there is no key to rotate`);
  const oldKey = keyFrom(readFileSync(files.secretKey, 'utf8').trim(), files.secretKey);
  let newKey: Buffer;
  const resuming = existsSync(files.nextKey);
  if (resuming) {
    // An earlier run stopped part-way: finish moving to the key it had chosen.
    newKey = keyFrom(readFileSync(files.nextKey, 'utf8').trim(), files.nextKey);
  } else {
    newKey = newKeyText ? keyFrom(newKeyText, 'MAILPILOT_NEW_SECRET_KEY') : newSecretKey();
    writeSecretFile(files.nextKey, newKey.toString('hex') + '\n');
  }
  let outcome: Omit<RotationOutcome, 'instructions'>;
  try {
    outcome = await reencryptPasswords(db, oldKey, newKey, now);
  } catch (err) {
    // A refusal changed nothing, so this run's key sealed nothing; left behind, it would keep MailPilot from starting.
    if (err instanceof RotationError && !resuming) rmSync(files.nextKey);
    throw err;
  }
  const previous = existsSync(files.previousKeys) ? readFileSync(files.previousKeys, 'utf8') : '';
  if (!previous.split('\n').includes(oldKey.toString('hex'))) writeSecretFile(files.previousKeys, `${previous}${oldKey.toString('hex')}\n`);
  renameSync(files.nextKey, files.secretKey);
  return {
    ...outcome,
    instructions: `The new key is in ${files.secretKey}; the old one was added to ${files.previousKeys} for unsubscribe links. Start MailPilot again.`,
  };
}

/** The command: rotates the key of the installation that `config` describes. */
export async function rotateSecretOfInstall(config: Config, newKeyText: string | undefined): Promise<RotationOutcome> {
  const db = await openDatabase({ url: config.databaseUrl, dataDir: config.databaseUrl ? undefined : `${config.dataDir}/pglite` });
  try {
    await migrate(db);
    return await rotateSecret(config, db, newKeyText, systemClock.now());
  } finally {
    await db.close();
  }
}
