-- Bounces, complaints and replies that come back after a message was accepted: DSNs (RFC 3464),
-- ARF complaint reports (RFC 5965) and replies, read from the inbound SMTP port (VERP envelope
-- senders at an account's bounce domain) and from each account's own mailbox over IMAP.

-- Envelope senders (MAIL FROM) of the account's messages are unique addresses at this domain.
ALTER TABLE smtp_accounts ADD COLUMN bounce_domain text;

-- What came back for a message. A hard bounce also turns a sent message into a failed one.
ALTER TABLE messages ADD COLUMN bounce_type text CHECK (bounce_type IN ('hard', 'soft'));
ALTER TABLE messages ADD COLUMN bounce_status text;
ALTER TABLE messages ADD COLUMN bounce_diagnostic text;
ALTER TABLE messages ADD COLUMN bounced_at timestamptz;
ALTER TABLE messages ADD COLUMN complained_at timestamptz;
ALTER TABLE messages ADD COLUMN replied_at timestamptz;
-- The bounce and complaint rates of an account over its recent sends read only these rows: few,
-- and in send order per account. Normal sends never enter the index, so sending pays nothing for it.
CREATE INDEX messages_account_reports ON messages (account_id, sent_at)
  WHERE bounce_type = 'hard' OR complained_at IS NOT NULL;

-- Counted once per message: hard bounces (also in `failed`), soft bounces, complaints, human replies.
ALTER TABLE campaigns ADD COLUMN bounced integer NOT NULL DEFAULT 0;
ALTER TABLE campaigns ADD COLUMN soft_bounced integer NOT NULL DEFAULT 0;
ALTER TABLE campaigns ADD COLUMN complained integer NOT NULL DEFAULT 0;
ALTER TABLE campaigns ADD COLUMN replied integer NOT NULL DEFAULT 0;

-- `bounce`: a bounce report after the message was accepted (`hard_bounce` stays for refusals during
-- the SMTP conversation).
ALTER TABLE suppressions DROP CONSTRAINT suppressions_reason_check;
ALTER TABLE suppressions ADD CONSTRAINT suppressions_reason_check
  CHECK (reason IN ('unsubscribed', 'hard_bounce', 'manual', 'complaint', 'bounce'));

-- An account's own mailbox, read over IMAP for the reports and replies that land there. The
-- password is encrypted like the SMTP password and bound to the account; null = the SMTP password.
-- `uid_validity`/`last_uid` are how far it has been read; the lease keeps one reader per mailbox.
CREATE TABLE account_mailboxes (
  account_id        integer PRIMARY KEY REFERENCES smtp_accounts ON DELETE CASCADE,
  user_id           integer NOT NULL REFERENCES users ON DELETE CASCADE,
  host              text NOT NULL,
  port              integer NOT NULL,
  security          text NOT NULL CHECK (security IN ('none', 'starttls', 'tls')),
  username          text,
  password_enc      text,
  mailbox           text NOT NULL,
  state             text NOT NULL DEFAULT 'unchecked' CHECK (state IN ('unchecked', 'ok', 'failing', 'auth_failed')),
  state_reason      text,
  checked_at        timestamptz,
  uid_validity      bigint,
  last_uid          bigint,
  lease_owner       text,
  lease_expires_at  timestamptz,
  -- Counts changes of the settings: a reader on an older version stops, and its writes no longer land.
  version           integer NOT NULL DEFAULT 1,
  updated_at        timestamptz NOT NULL
);
CREATE INDEX account_mailboxes_user ON account_mailboxes (user_id, account_id);
SELECT mailpilot_tenant_wall('account_mailboxes');
