import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import type { Config } from '../config.ts';
import { systemClock } from '../clock.ts';
import { openDatabase, type Database } from '../db/database.ts';
import { migrate } from '../db/migrate.ts';
import { liveMailboxLeaseCount, lockSealedMailboxPasswords, mailboxPassword, sealMailboxPassword, storeSealedMailboxPasswords } from '../db/accountMailboxes.ts';
import { liveLeaseCount, lockSealedPasswords, storeSealedPasswords, type SealedPassword } from '../db/sealedPasswords.ts';
import { accountOAuthSecret, accountPassword, sealAccountPassword, sealOAuthSecret } from '../db/smtpAccounts.ts';
import { newSecretKey, parseSecretKey, secretFiles } from '../secrets.ts';

/**
 * `mailpilot rotate-secret`: moves every stored SMTP password and OAuth2 secret to a new MAILPILOT_SECRET_KEY.
 *
 * Every process must be stopped first (a running one would keep reading passwords with the old
 * key), so it refuses while a worker holds an account. The passwords change in one transaction: all
 * under the old key or all under the new one. Running it again is always safe: a password that
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
  reencrypted: number;
  /** Passwords an earlier, interrupted run had already moved to the new key. */
  alreadyNew: number;
  /** What the operator does next. */
  instructions: string;
}

/** Re-encrypts every stored password from `oldKey` to `newKey`, in one transaction. */
export async function reencryptPasswords(db: Database, oldKey: Buffer, newKey: Buffer, now: Date): Promise<Omit<RotationOutcome, 'instructions'>> {
  const leased = (await liveLeaseCount(db, now)) + (await liveMailboxLeaseCount(db, now));
  if (leased > 0) {
    throw new RotationError(`${leased} SMTP account(s) or mailbox(es) are held by a running MailPilot process: stop every MailPilot process first`);
  }
  return db.transaction(async (tx) => {
    const changed: SealedPassword[] = [];
    let alreadyNew = 0;
    for (const row of await lockSealedPasswords(tx)) {
      if (opensWith(newKey, row)) {
        alreadyNew++;
        continue;
      }
      if (!opensWith(oldKey, row)) {
        throw new RotationError(`the secrets of SMTP account ${row.id} open with neither the current nor the new key; nothing was changed`);
      }
      changed.push(resealed(oldKey, newKey, row));
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

/** Each secret of an account, how to open it and how to seal it again. */
const SECRETS = [
  { field: 'passwordEnc', open: (k: Buffer, id: number, v: string) => accountPassword(k, id, v), seal: (k: Buffer, id: number, v: string) => sealAccountPassword(k, id, v) },
  {
    field: 'oauthClientSecretEnc',
    open: (k: Buffer, id: number, v: string) => accountOAuthSecret(k, id, 'client_secret', v),
    seal: (k: Buffer, id: number, v: string) => sealOAuthSecret(k, id, 'client_secret', v),
  },
  {
    field: 'oauthRefreshTokenEnc',
    open: (k: Buffer, id: number, v: string) => accountOAuthSecret(k, id, 'refresh_token', v),
    seal: (k: Buffer, id: number, v: string) => sealOAuthSecret(k, id, 'refresh_token', v),
  },
] as const;

/** Whether every secret the account has opens with `key`. */
function opensWith(key: Buffer, row: SealedPassword): boolean {
  try {
    for (const s of SECRETS) if (row[s.field] !== null) s.open(key, row.id, row[s.field]!);
    return true;
  } catch {
    return false;
  }
}

function resealed(oldKey: Buffer, newKey: Buffer, row: SealedPassword): SealedPassword {
  const next = { ...row };
  for (const s of SECRETS) if (row[s.field] !== null) next[s.field] = s.seal(newKey, row.id, s.open(oldKey, row.id, row[s.field]!));
  return next;
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
  if (existsSync(files.nextKey)) {
    // An earlier run stopped part-way: finish moving to the key it had chosen.
    newKey = keyFrom(readFileSync(files.nextKey, 'utf8').trim(), files.nextKey);
  } else {
    newKey = newKeyText ? keyFrom(newKeyText, 'MAILPILOT_NEW_SECRET_KEY') : newSecretKey();
    writeSecretFile(files.nextKey, newKey.toString('hex') + '\n');
  }
  const outcome = await reencryptPasswords(db, oldKey, newKey, now);
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
