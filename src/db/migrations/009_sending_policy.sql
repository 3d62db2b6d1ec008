-- The sending policy (API.md "Sending policy"): usage counted from the instants of sends, reserved
-- sends held apart from sends, and the rules an account and its user set.

-- The domain of an address (after its last @), lower case: what domain caps and recipient throttles match.
CREATE FUNCTION email_domain(address text) RETURNS text
  LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT lower(substring(address from '@([^@]*)$')) $$;

-- Sends per account per UTC minute, at the instant each SMTP attempt started. Every time zone in use
-- is a whole number of quarter hours from UTC, so a clock hour or a calendar day anywhere is a sum of
-- minutes: changing an account's time zone or window kind forgets and double-counts nothing, and the
-- two 01:00 hours of the night clocks go back are two different hours. The hourly rows of before
-- (which counted reservations at the hour's start) stay, as the first minute of their hour.
ALTER TABLE smtp_usage RENAME COLUMN hour_start TO minute_start;
DROP FUNCTION reserve_sends(integer, integer, timestamptz);

-- Sends reserved by a worker (or a test send) and not yet spent or given back: they count against
-- every window their validity [reserved_at, valid_until) touches, so limits hold under concurrency
-- and crashes. A send that lands moves from its hold to smtp_usage in the statement that records it.
CREATE TABLE send_holds (
  id           bigserial PRIMARY KEY,
  account_id   integer NOT NULL REFERENCES smtp_accounts ON DELETE CASCADE,
  reserved_at  timestamptz NOT NULL,
  valid_until  timestamptz NOT NULL,
  remaining    integer NOT NULL CHECK (remaining >= 0)
);
CREATE INDEX send_holds_open ON send_holds (account_id, valid_until) WHERE remaining > 0;
SELECT mailpilot_tenant_wall('send_holds', 'account_id IN (SELECT id FROM smtp_accounts)');

-- Local days (in the account's zone when it sent) on which an account sent: its warm-up day number.
CREATE TABLE send_days (
  account_id  integer NOT NULL REFERENCES smtp_accounts ON DELETE CASCADE,
  day         date NOT NULL,
  PRIMARY KEY (account_id, day)
);
SELECT mailpilot_tenant_wall('send_days', 'account_id IN (SELECT id FROM smtp_accounts)');
INSERT INTO send_days (account_id, day)
SELECT DISTINCT u.account_id, (u.minute_start AT TIME ZONE a.timezone)::date
  FROM smtp_usage u JOIN smtp_accounts a ON a.id = u.account_id WHERE u.sent > 0;

ALTER TABLE smtp_accounts
  ADD COLUMN limit_window text NOT NULL DEFAULT 'calendar' CHECK (limit_window IN ('calendar', 'rolling')),
  ADD COLUMN preset text CHECK (preset IN ('gmail', 'google_workspace', 'microsoft365', 'ses')),
  -- {timezone, days, start, end}: see src/sendingPolicy/sendingWindow.ts
  ADD COLUMN sending_window jsonb,
  -- {startPerDay, increasePerDay}
  ADD COLUMN warmup jsonb,
  ADD COLUMN min_gap_seconds integer CHECK (min_gap_seconds > 0),
  ADD COLUMN max_gap_seconds integer CHECK (max_gap_seconds > 0),
  -- The earliest start of the account's next send, after the last one's gap (any process).
  ADD COLUMN gap_until timestamptz,
  -- SMTP sessions this account opens at most (within its server's share); null = its share.
  ADD COLUMN max_connections integer CHECK (max_connections > 0);

-- Limits shared by all of a user's accounts whose address is at `domain`.
CREATE TABLE domain_caps (
  id            serial PRIMARY KEY,
  user_id       integer NOT NULL REFERENCES users ON DELETE CASCADE,
  domain        text NOT NULL,
  hourly_limit  integer NOT NULL CHECK (hourly_limit >= 0),
  daily_limit   integer NOT NULL CHECK (daily_limit >= 0),
  limit_window  text NOT NULL CHECK (limit_window IN ('calendar', 'rolling')),
  created_at    timestamptz NOT NULL
);
CREATE UNIQUE INDEX domain_caps_user_domain ON domain_caps (user_id, domain);
SELECT mailpilot_tenant_wall('domain_caps');

-- At most so many messages a minute or an hour to recipients at `domain`, over all of a user's accounts.
CREATE TABLE recipient_throttles (
  id          serial PRIMARY KEY,
  user_id     integer NOT NULL REFERENCES users ON DELETE CASCADE,
  domain      text NOT NULL,
  per_minute  integer CHECK (per_minute > 0),
  per_hour    integer CHECK (per_hour > 0),
  created_at  timestamptz NOT NULL,
  CHECK (per_minute IS NOT NULL OR per_hour IS NOT NULL)
);
CREATE UNIQUE INDEX recipient_throttles_user_domain ON recipient_throttles (user_id, domain);
SELECT mailpilot_tenant_wall('recipient_throttles');

-- Sends to a throttled recipient domain per UTC minute.
CREATE TABLE recipient_minutes (
  user_id       integer NOT NULL REFERENCES users ON DELETE CASCADE,
  domain        text NOT NULL,
  minute_start  timestamptz NOT NULL,
  sent          integer NOT NULL CHECK (sent >= 0),
  PRIMARY KEY (user_id, domain, minute_start)
);
SELECT mailpilot_tenant_wall('recipient_minutes');

-- Why the engine paused a campaign, as a code (API.md pauseReason); pause_reason keeps the words.
-- It takes over from pause_cause (008), which named only the two reasons of a `paused` campaign.
ALTER TABLE campaigns ADD COLUMN pause_code text
  CHECK (pause_code IN ('limits', 'sending_window', 'warmup', 'domain_cap', 'account_health', 'bounce_rate', 'repeated_failures'));
UPDATE campaigns SET pause_code = CASE WHEN status = 'paused_limits' THEN 'limits'
                                       WHEN pause_cause = 'no_usable_account' THEN 'account_health'
                                       WHEN pause_cause = 'repeated_failures' THEN 'repeated_failures' END;
ALTER TABLE campaigns DROP COLUMN pause_cause;
