-- Fault tolerance: what the engine needs to survive SMTP trouble, crashes and several processes.

-- Messages whose SMTP transaction lost its reply after the final dot: counted as sent, and here,
-- because they may or may not have arrived (they are never sent again).
ALTER TABLE campaigns ADD COLUMN possibly_delivered integer NOT NULL DEFAULT 0;
-- The first reply that blamed the sender's domain (SPF/DKIM/DMARC), shown as a campaign warning.
ALTER TABLE campaigns ADD COLUMN sender_warning text;

-- Throttles in a row without a successful send in between: each doubles the account's back-off.
ALTER TABLE smtp_accounts ADD COLUMN throttle_strikes integer NOT NULL DEFAULT 0;

-- Engine processes alive right now (each renews its row), so each takes a fair share of the accounts.
CREATE TABLE engine_nodes (
  owner        text PRIMARY KEY,
  alive_until  timestamptz NOT NULL
);

-- The scheduler's timer for the next retry reads the earliest scheduled one; only retried rows are indexed.
CREATE INDEX messages_retry_due ON messages (next_attempt_at) WHERE status = 'pending' AND next_attempt_at IS NOT NULL;
