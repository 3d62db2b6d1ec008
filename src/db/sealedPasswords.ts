import type { Queryable } from './database.ts';

/** Stored SMTP passwords as ciphertext, for re-encryption under a new key (cli/rotateSecret.ts). */
export interface SealedPassword {
  id: number;
  passwordEnc: string;
}

/** Every account with a password, locked until the transaction ends so no one rewrites one meanwhile. */
export async function lockSealedPasswords(tx: Queryable): Promise<SealedPassword[]> {
  return tx.query<SealedPassword>(
    'SELECT id, password_enc AS "passwordEnc" FROM smtp_accounts WHERE password_enc IS NOT NULL ORDER BY id FOR UPDATE',
  );
}

export async function storeSealedPasswords(tx: Queryable, rows: SealedPassword[]): Promise<void> {
  if (rows.length === 0) return;
  await tx.query(
    `UPDATE smtp_accounts a SET password_enc = r.enc FROM unnest($1::int[], $2::text[]) AS r(id, enc) WHERE a.id = r.id`,
    [rows.map((r) => r.id), rows.map((r) => r.passwordEnc)],
  );
}

/** Accounts a running worker holds right now: a sign that MailPilot is still running somewhere. */
export async function liveLeaseCount(db: Queryable, now: Date): Promise<number> {
  const [row] = await db.query<{ n: number }>('SELECT count(*) AS n FROM smtp_accounts WHERE lease_owner IS NOT NULL AND lease_expires_at >= $1', [
    now,
  ]);
  return row!.n;
}
