-- Switching an account off stops it at once, and a bounce or complaint rate past its user's
-- threshold pauses it (src/engine/rateGuard.ts).

-- 'paused': the account's bounce or complaint rate passed its user's threshold; only its user lifts it.
ALTER TABLE smtp_accounts DROP CONSTRAINT smtp_accounts_health_check;
ALTER TABLE smtp_accounts ADD CONSTRAINT smtp_accounts_health_check
  CHECK (health IN ('healthy', 'throttled', 'exhausted', 'disabled', 'paused'));
-- The rate guard counts only the sends from this instant on (set when its user resumes the account).
ALTER TABLE smtp_accounts ADD COLUMN rate_guard_since timestamptz;

-- Per account and UTC minute beside `sent`: hard bounces (5.1.x during the SMTP conversation, or a
-- DSN at the minute its message was sent) and complaints, so the rate over the last N sends reads
-- a few rows per account, never the messages.
ALTER TABLE smtp_usage ADD COLUMN hard_bounced integer NOT NULL DEFAULT 0 CHECK (hard_bounced >= 0);
ALTER TABLE smtp_usage ADD COLUMN complained integer NOT NULL DEFAULT 0 CHECK (complained >= 0);

-- The user's thresholds ({hardBounces, complaints}, each {percent, lastSends, minSends} or null = off).
-- Defaults: README "Bounce and complaint rate guard".
ALTER TABLE users ADD COLUMN rate_guard jsonb NOT NULL DEFAULT
  '{"hardBounces": {"percent": 5, "lastSends": 200, "minSends": 100}, "complaints": {"percent": 0.3, "lastSends": 2000, "minSends": 1000}}';

-- A campaign no account could send for waits as paused_limits without a resumeAt (it was 'paused').
UPDATE campaigns SET status = 'paused_limits', resume_at = NULL WHERE status = 'paused' AND pause_code = 'account_health';

-- The rate guard counts in smtp_usage (above), so nothing reads reported messages by account.
DROP INDEX messages_account_reports;
