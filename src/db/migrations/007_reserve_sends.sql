-- A quota reservation in one round trip (see reserveSends in db/usage.ts). An advisory lock on the
-- account serialises its reservations across processes; the account row is not locked, so lease
-- renewals never wait on a reservation. It is a function rather than one statement because a
-- statement reads with the snapshot it started with, taken before the lock was granted: here each
-- statement after the lock reads afresh, so two reservations can never both see the same room.
CREATE FUNCTION reserve_sends(account integer, want integer, at timestamptz,
                              OUT granted integer, OUT hour_start timestamptz, OUT valid_until timestamptz)
  LANGUAGE plpgsql AS $$
DECLARE
  hourly integer;
  daily integer;
  tz text;
  this_hour bigint;
  today bigint;
BEGIN
  PERFORM pg_advisory_xact_lock(7246002, account);
  SELECT a.hourly_limit, a.daily_limit, a.timezone INTO hourly, daily, tz FROM smtp_accounts a WHERE a.id = account;
  IF NOT FOUND THEN
    granted := 0;
    hour_start := at;
    valid_until := at;
    RETURN;
  END IF;
  hour_start := hour_window_start(at, tz);
  valid_until := least(hour_start + interval '1 hour', next_day_window_start(at, tz));
  SELECT coalesce(sum(u.sent) FILTER (WHERE u.hour_start = reserve_sends.hour_start), 0), coalesce(sum(u.sent), 0)
    INTO this_hour, today
    FROM smtp_usage u
   WHERE u.account_id = account AND u.hour_start >= day_window_start(at, tz) AND u.hour_start < next_day_window_start(at, tz);
  granted := want;
  IF hourly > 0 THEN granted := least(granted, hourly - this_hour); END IF;
  IF daily > 0 THEN granted := least(granted, daily - today); END IF;
  granted := greatest(0, granted);
  IF granted > 0 THEN
    INSERT INTO smtp_usage AS u (account_id, hour_start, sent) VALUES (account, reserve_sends.hour_start, granted)
    ON CONFLICT ON CONSTRAINT smtp_usage_pkey DO UPDATE SET sent = u.sent + excluded.sent;
  END IF;
END $$;
