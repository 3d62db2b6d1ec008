-- The second wall between tenants: PostgreSQL row-level security. The API runs each user's queries
-- as the role mailpilot_tenant with app.user_id set for the transaction (src/db/tenantScope.ts);
-- that role sees and writes only rows of that user, even through a query that forgot its user_id
-- filter. Every other role (the engine, migrations, the admin) keeps seeing every row.

-- Roles are cluster-wide: many databases on one server share it, and two migrations may race to
-- create it (the loser sees duplicate_object or, mid-race, unique_violation).
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mailpilot_tenant') THEN
    BEGIN
      CREATE ROLE mailpilot_tenant NOLOGIN;
    EXCEPTION
      WHEN duplicate_object OR unique_violation THEN NULL;
      WHEN insufficient_privilege THEN
        RAISE EXCEPTION 'MailPilot needs the role mailpilot_tenant and may not create it'
          USING HINT = format('as a superuser, run once: CREATE ROLE mailpilot_tenant NOLOGIN; GRANT mailpilot_tenant TO %I;', current_user);
    END;
  END IF;
  -- SET ROLE needs membership; superusers are members of every role already.
  IF NOT pg_has_role(current_user, 'mailpilot_tenant', 'MEMBER') THEN
    EXECUTE format('GRANT mailpilot_tenant TO %I', current_user);
  END IF;
END $$;

-- The user a tenant transaction acts for; NULL (no rows at all) when none was set. A custom setting
-- reads as '' once a transaction that set it locally has ended, hence nullif.
CREATE FUNCTION mailpilot_user_id() RETURNS integer
  LANGUAGE sql STABLE AS $$ SELECT nullif(current_setting('app.user_id', true), '')::integer $$;

GRANT USAGE ON SCHEMA public TO mailpilot_tenant;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO mailpilot_tenant;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO mailpilot_tenant;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO mailpilot_tenant;

-- Puts a table behind the wall: every role may use every row (permissive), and mailpilot_tenant only
-- the rows `tenant_check` accepts (restrictive, for reads and writes). FORCE makes it bind the
-- table's owner too; superusers bypass it always, which is why tenants run as their own role.
-- A migration adding a user-owned table calls it: SELECT mailpilot_tenant_wall('new_table');
CREATE FUNCTION mailpilot_tenant_wall(tbl regclass, tenant_check text DEFAULT 'user_id = mailpilot_user_id()') RETURNS void
  LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
  EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
  EXECUTE format('CREATE POLICY every_role ON %s USING (true) WITH CHECK (true)', tbl);
  EXECUTE format('CREATE POLICY tenant_wall ON %s AS RESTRICTIVE TO mailpilot_tenant USING (%s) WITH CHECK (%s)',
                 tbl, tenant_check, tenant_check);
  EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON %s TO mailpilot_tenant', tbl);
END $$;

-- Suppressions get an id, so their listing pages like every other collection.
ALTER TABLE suppressions ADD COLUMN id bigserial PRIMARY KEY;
CREATE INDEX suppressions_user ON suppressions (user_id, id);
GRANT USAGE, SELECT ON SEQUENCE suppressions_id_seq TO mailpilot_tenant;

SELECT mailpilot_tenant_wall('users', 'id = mailpilot_user_id()');
-- Usage rows belong to an account; the subquery is itself walled, so it sees only the user's accounts.
SELECT mailpilot_tenant_wall('smtp_usage', 'account_id IN (SELECT id FROM smtp_accounts)');
-- Every table carrying a user_id, including any an earlier migration added.
SELECT mailpilot_tenant_wall(format('%I.%I', c.table_schema, c.table_name)::regclass)
  FROM information_schema.columns c
  JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
 WHERE c.table_schema = 'public' AND c.column_name = 'user_id' AND t.table_type = 'BASE TABLE'
 ORDER BY c.table_name;

-- Stats read the counters of unfinished campaigns, per user and in total.
CREATE INDEX campaigns_unfinished ON campaigns (user_id) WHERE status IN ('scheduled', 'running', 'paused', 'paused_limits');
