-- Accounts in the real world (issue 15): OAuth2 (XOAUTH2) credentials, and what providers' replies
-- teach the engine about an account.

-- OAuth2 refresh_token grant (RFC 6749 §6). The client secret and the refresh token are sealed like
-- the password (src/secrets.ts, bound to the row); the client id and token URL are not secrets.
-- An account authenticates with a password or with OAuth2, never both.
ALTER TABLE smtp_accounts
  ADD COLUMN oauth_client_id text,
  ADD COLUMN oauth_client_secret_enc text,
  ADD COLUMN oauth_refresh_token_enc text,
  ADD COLUMN oauth_token_url text,
  ADD COLUMN oauth_user text,
  ADD CONSTRAINT smtp_accounts_oauth_whole CHECK (
    (oauth_client_id IS NULL) = (oauth_refresh_token_enc IS NULL)
    AND (oauth_client_id IS NULL) = (oauth_client_secret_enc IS NULL)
    AND (oauth_client_id IS NULL) = (oauth_token_url IS NULL)),
  ADD CONSTRAINT smtp_accounts_one_auth CHECK (oauth_client_id IS NULL OR password_enc IS NULL);

-- The most concurrent connections the account's server accepts, learned from its replies
-- (Exchange Online's 432 4.3.2); NULL = the account's share of its server's maxConnections.
ALTER TABLE smtp_accounts ADD COLUMN connection_cap integer CHECK (connection_cap > 0);

-- After a throttle the account restarts gently until recovery_until: one connection, and at most
-- recovery_rate sends a second when the server said it was sending too fast.
ALTER TABLE smtp_accounts
  ADD COLUMN recovery_rate real CHECK (recovery_rate > 0),
  ADD COLUMN recovery_until timestamptz;
