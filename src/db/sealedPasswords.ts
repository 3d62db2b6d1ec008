import type { Queryable } from './database.ts';

/**
 * An account's stored secrets as ciphertext, for re-encryption under a new key (cli/rotateSecret.ts):
 * its SMTP password, its OAuth2 client secret and refresh token and its DKIM private key, each null
 * when absent.
 */
export interface SealedPassword {
  id: number;
  passwordEnc: string | null;
  oauthClientSecretEnc: string | null;
  oauthRefreshTokenEnc: string | null;
  dkimKeyEnc: string | null;
}

/** Every account with a sealed secret, locked until the transaction ends so no one rewrites one meanwhile. */
export async function lockSealedPasswords(tx: Queryable): Promise<SealedPassword[]> {
  return tx.query<SealedPassword>(
    `SELECT id, password_enc AS "passwordEnc", oauth_client_secret_enc AS "oauthClientSecretEnc", oauth_refresh_token_enc AS "oauthRefreshTokenEnc",
            dkim_key_enc AS "dkimKeyEnc"
       FROM smtp_accounts
      WHERE password_enc IS NOT NULL OR oauth_client_secret_enc IS NOT NULL OR dkim_key_enc IS NOT NULL
      ORDER BY id FOR UPDATE`,
  );
}

export async function storeSealedPasswords(tx: Queryable, rows: SealedPassword[]): Promise<void> {
  if (rows.length === 0) return;
  await tx.query(
    `UPDATE smtp_accounts a SET password_enc = r.enc, oauth_client_secret_enc = r.secret, oauth_refresh_token_enc = r.refresh, dkim_key_enc = r.dkim
       FROM unnest($1::int[], $2::text[], $3::text[], $4::text[], $5::text[]) AS r(id, enc, secret, refresh, dkim) WHERE a.id = r.id`,
    [
      rows.map((r) => r.id),
      rows.map((r) => r.passwordEnc),
      rows.map((r) => r.oauthClientSecretEnc),
      rows.map((r) => r.oauthRefreshTokenEnc),
      rows.map((r) => r.dkimKeyEnc),
    ],
  );
}

/** Accounts a running worker holds right now: a sign that MailPilot is still running somewhere. */
export async function liveLeaseCount(db: Queryable, now: Date): Promise<number> {
  const [row] = await db.query<{ n: number }>('SELECT count(*) AS n FROM smtp_accounts WHERE lease_owner IS NOT NULL AND lease_expires_at >= $1', [
    now,
  ]);
  return row!.n;
}
