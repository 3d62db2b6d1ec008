-- Lists carry their contact count, so reading a list never counts a million rows. Statement-level
-- triggers keep it exact for every writer (imports, cascading deletes) at one UPDATE per statement.

ALTER TABLE lists ADD COLUMN contact_count integer NOT NULL DEFAULT 0;

CREATE FUNCTION lists_count_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE lists l SET contact_count = l.contact_count + n.added
    FROM (SELECT list_id, count(*) AS added FROM added_rows GROUP BY list_id) n
   WHERE l.id = n.list_id;
  RETURN NULL;
END $$;

CREATE FUNCTION lists_count_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE lists l SET contact_count = l.contact_count - n.removed
    FROM (SELECT list_id, count(*) AS removed FROM removed_rows GROUP BY list_id) n
   WHERE l.id = n.list_id;
  RETURN NULL;
END $$;

-- For INSERT ... ON CONFLICT DO UPDATE the INSERT transition table holds only the rows inserted.
CREATE TRIGGER contacts_count_added AFTER INSERT ON contacts
  REFERENCING NEW TABLE AS added_rows FOR EACH STATEMENT EXECUTE FUNCTION lists_count_added();
CREATE TRIGGER contacts_count_removed AFTER DELETE ON contacts
  REFERENCING OLD TABLE AS removed_rows FOR EACH STATEMENT EXECUTE FUNCTION lists_count_removed();

-- The import that last wrote a contact: a streaming import tells an address repeated within its own
-- file (a duplicate) from one already on the list (an update) without holding every address in memory.
ALTER TABLE contacts ADD COLUMN import_id bigint;
CREATE SEQUENCE contact_imports_seq;
