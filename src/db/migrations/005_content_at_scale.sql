-- Contacts and content at scale: fast imports, unsubscribe counters, DKIM keys, retention.

-- Contacts keep no foreign keys: checking them cost half of a bulk import's database time (a
-- lookup, and for the list a row lock, per imported row). What they guaranteed holds otherwise:
-- a contact's user is its list's user, which the import checks; the import locks its list once per
-- chunk (FOR KEY SHARE, as the key check would), so the list cannot go away under it; and deleting
-- lists (directly or with their user) deletes their contacts, through the trigger below.
ALTER TABLE contacts DROP CONSTRAINT contacts_user_id_fkey;
ALTER TABLE contacts DROP CONSTRAINT contacts_list_id_fkey;

CREATE FUNCTION lists_delete_contacts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM contacts c USING removed_lists r WHERE c.list_id = r.id;
  RETURN NULL;
END $$;

CREATE TRIGGER lists_delete_contacts AFTER DELETE ON lists
  REFERENCING OLD TABLE AS removed_lists FOR EACH STATEMENT EXECUTE FUNCTION lists_delete_contacts();

-- Recipients who unsubscribed through this campaign's messages (counted once per address).
ALTER TABLE campaigns ADD COLUMN unsubscribed integer NOT NULL DEFAULT 0;
-- When retention removed the campaign's per-recipient rows (its counters stay).
ALTER TABLE campaigns ADD COLUMN archived_at timestamptz;

-- DKIM signing per account: all three or none; the private key is encrypted like the password.
ALTER TABLE smtp_accounts ADD COLUMN dkim_domain text;
ALTER TABLE smtp_accounts ADD COLUMN dkim_selector text;
ALTER TABLE smtp_accounts ADD COLUMN dkim_key_enc text;
ALTER TABLE smtp_accounts ADD CONSTRAINT smtp_accounts_dkim_complete
  CHECK ((dkim_domain IS NULL) = (dkim_selector IS NULL) AND (dkim_domain IS NULL) = (dkim_key_enc IS NULL));
