-- Contacts, the whole lifecycle: address verification, lists and contacts that go away while a
-- campaign still sends to them, data-protection erasure, and campaigns that skip undeliverable addresses.

-- The last verification of the contact's address (src/contacts/verification.ts): NULL = never verified.
ALTER TABLE contacts ADD COLUMN verification jsonb;

-- A campaign's queue is built at start and points at its contacts for their name and attributes.
-- When a contact goes away (its list or itself deleted) while its message still waits, the message
-- keeps a copy of them here, so it is sent as it would have been. Erasure clears it.
ALTER TABLE messages ADD COLUMN merge jsonb;

-- Skip addresses whose last verification found them undeliverable when the queue is built; they
-- are counted in `skipped` (never in `total`), by reason in `skipped_reasons` ({"no_mail_domain": 3}).
ALTER TABLE campaigns ADD COLUMN skip_undeliverable boolean NOT NULL DEFAULT false;
ALTER TABLE campaigns ADD COLUMN skipped integer NOT NULL DEFAULT 0;
ALTER TABLE campaigns ADD COLUMN skipped_reasons jsonb NOT NULL DEFAULT '{}';

-- `erased`: the address's owner asked for its data to be erased; only this entry is kept, so it is never mailed again.
ALTER TABLE suppressions DROP CONSTRAINT suppressions_reason_check;
ALTER TABLE suppressions ADD CONSTRAINT suppressions_reason_check
  CHECK (reason IN ('unsubscribed', 'hard_bounce', 'manual', 'complaint', 'bounce', 'erased'));
