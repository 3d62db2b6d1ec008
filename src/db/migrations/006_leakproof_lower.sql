-- Row-level security evaluates a query's own conditions after the tenant policy unless their
-- functions are LEAKPROOF, and then an expression index on lower(email) cannot serve them: building
-- a queue or importing under the tenant role fell back to scanning whole lists per address.
-- lower(text) reveals nothing through errors or side effects, so it is declared leakproof. Only a
-- superuser may do that; elsewhere an operator runs this statement once (the README says so).
DO $$
BEGIN
  ALTER FUNCTION lower(text) LEAKPROOF;
EXCEPTION WHEN insufficient_privilege THEN
  RAISE NOTICE 'lower(text) stays not leakproof: run "ALTER FUNCTION lower(text) LEAKPROOF" as a superuser';
END $$;
