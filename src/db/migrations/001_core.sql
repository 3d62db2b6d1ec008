-- The core schema: tenants, SMTP servers and accounts with their usage windows, lists and contacts,
-- campaigns and their per-recipient queue. Every user-owned table carries user_id.

CREATE TABLE users (
  id          serial PRIMARY KEY,
  name        text NOT NULL,
  email       text NOT NULL,
  created_at  timestamptz NOT NULL
);

CREATE TABLE api_keys (
  id          serial PRIMARY KEY,
  user_id     integer NOT NULL REFERENCES users ON DELETE CASCADE,
  hash        text NOT NULL UNIQUE,
  prefix      text NOT NULL,
  created_at  timestamptz NOT NULL,
  revoked_at  timestamptz
);
CREATE INDEX api_keys_user ON api_keys (user_id);

CREATE TABLE smtp_servers (
  id               serial PRIMARY KEY,
  user_id          integer NOT NULL REFERENCES users ON DELETE CASCADE,
  name             text NOT NULL,
  host             text NOT NULL,
  port             integer NOT NULL,
  security         text NOT NULL CHECK (security IN ('none', 'starttls', 'tls')),
  max_connections  integer NOT NULL,
  active           boolean NOT NULL DEFAULT true,
  created_at       timestamptz NOT NULL
);
CREATE INDEX smtp_servers_user ON smtp_servers (user_id, id);

CREATE TABLE smtp_accounts (
  id                serial PRIMARY KEY,
  user_id           integer NOT NULL REFERENCES users ON DELETE CASCADE,
  server_id         integer NOT NULL REFERENCES smtp_servers,
  email             text NOT NULL,
  username          text,
  password_enc      text,
  hourly_limit      integer NOT NULL CHECK (hourly_limit >= 0),
  daily_limit       integer NOT NULL CHECK (daily_limit >= 0),
  rate_per_second   real,
  timezone          text NOT NULL DEFAULT 'UTC',
  active            boolean NOT NULL DEFAULT true,
  health            text NOT NULL DEFAULT 'healthy' CHECK (health IN ('healthy', 'throttled', 'exhausted', 'disabled')),
  health_until      timestamptz,
  health_reason     text,
  lease_owner       text,
  lease_expires_at  timestamptz,
  created_at        timestamptz NOT NULL
);
CREATE INDEX smtp_accounts_user ON smtp_accounts (user_id, id);
CREATE INDEX smtp_accounts_server ON smtp_accounts (server_id);

-- One row per account per clock hour (in the account's timezone); a day is the sum of its hours.
CREATE TABLE smtp_usage (
  account_id  integer NOT NULL REFERENCES smtp_accounts ON DELETE CASCADE,
  hour_start  timestamptz NOT NULL,
  sent        integer NOT NULL CHECK (sent >= 0),
  PRIMARY KEY (account_id, hour_start)
);

-- The limit windows, defined once: clock hours and calendar days in the account's timezone.
CREATE FUNCTION hour_window_start(at timestamptz, tz text) RETURNS timestamptz
  LANGUAGE sql STABLE AS $$ SELECT date_trunc('hour', at AT TIME ZONE tz) AT TIME ZONE tz $$;
CREATE FUNCTION day_window_start(at timestamptz, tz text) RETURNS timestamptz
  LANGUAGE sql STABLE AS $$ SELECT date_trunc('day', at AT TIME ZONE tz) AT TIME ZONE tz $$;
CREATE FUNCTION next_day_window_start(at timestamptz, tz text) RETURNS timestamptz
  LANGUAGE sql STABLE AS $$ SELECT (date_trunc('day', at AT TIME ZONE tz) + interval '1 day') AT TIME ZONE tz $$;

CREATE TABLE lists (
  id          serial PRIMARY KEY,
  user_id     integer NOT NULL REFERENCES users ON DELETE CASCADE,
  name        text NOT NULL,
  created_at  timestamptz NOT NULL
);
CREATE INDEX lists_user ON lists (user_id, id);

CREATE TABLE contacts (
  id          serial PRIMARY KEY,
  user_id     integer NOT NULL REFERENCES users ON DELETE CASCADE,
  list_id     integer NOT NULL REFERENCES lists ON DELETE CASCADE,
  email       text NOT NULL,
  name        text,
  attributes  jsonb NOT NULL DEFAULT '{}',
  created_at  timestamptz NOT NULL
);
-- Addresses compare case-insensitively: one contact per address per list.
CREATE UNIQUE INDEX contacts_list_email ON contacts (list_id, lower(email));

CREATE TABLE campaigns (
  id            serial PRIMARY KEY,
  user_id       integer NOT NULL REFERENCES users ON DELETE CASCADE,
  name          text NOT NULL,
  subject       text NOT NULL,
  html          text,
  text          text,
  from_name     text,
  reply_to      text,
  list_ids      integer[] NOT NULL,
  status        text NOT NULL CHECK (status IN ('draft', 'scheduled', 'running', 'paused', 'paused_limits', 'stopped', 'completed')),
  -- Why the engine paused it (e.g. which accounts need attention), shown as a warning.
  pause_reason  text,
  resume_at     timestamptz,
  scheduled_at  timestamptz,
  started_at    timestamptz,
  completed_at  timestamptz,
  total         integer NOT NULL DEFAULT 0,
  sent          integer NOT NULL DEFAULT 0,
  failed        integer NOT NULL DEFAULT 0,
  suppressed    integer NOT NULL DEFAULT 0,
  cancelled     integer NOT NULL DEFAULT 0,
  created_at    timestamptz NOT NULL
);
CREATE INDEX campaigns_user ON campaigns (user_id, id);
CREATE INDEX campaigns_active ON campaigns (status) WHERE status IN ('scheduled', 'running', 'paused_limits');

-- The queue. A 'sending' row belongs to the worker holding its account's lease: the account lease
-- is the message lease, so a crash is recovered by taking over (or sweeping) that account.
CREATE TABLE messages (
  id               bigserial PRIMARY KEY,
  campaign_id      integer NOT NULL REFERENCES campaigns ON DELETE CASCADE,
  user_id          integer NOT NULL,
  contact_id       integer,
  email            text NOT NULL,
  status           text NOT NULL CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'suppressed', 'cancelled')),
  attempts         smallint NOT NULL DEFAULT 0,
  next_attempt_at  timestamptz,
  account_id       integer,
  last_error       text,
  sent_at          timestamptz
);
-- Claims read only pending rows, in id order, per campaign.
CREATE INDEX messages_pending ON messages (campaign_id, id) WHERE status = 'pending';
CREATE INDEX messages_sending ON messages (account_id) WHERE status = 'sending';
-- Per-campaign listings, all statuses or one (e.g. the failed ones of a million-row campaign).
CREATE INDEX messages_campaign ON messages (campaign_id, id);
CREATE INDEX messages_campaign_status ON messages (campaign_id, status, id);

CREATE TABLE suppressions (
  user_id     integer NOT NULL REFERENCES users ON DELETE CASCADE,
  email       text NOT NULL,
  reason      text NOT NULL CHECK (reason IN ('unsubscribed', 'hard_bounce', 'manual', 'complaint')),
  created_at  timestamptz NOT NULL
);
CREATE UNIQUE INDEX suppressions_user_email ON suppressions (user_id, lower(email));
