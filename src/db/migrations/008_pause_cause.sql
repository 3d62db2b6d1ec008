-- Who paused a campaign that is `paused`, and why: NULL for its user (by hand), or the engine
-- because no SMTP account of the user could send (it resumes when one can), or because its
-- messages kept failing for the same local reason (only its user resumes it, after a fix).
ALTER TABLE campaigns ADD COLUMN pause_cause text CHECK (pause_cause IN ('no_usable_account', 'repeated_failures'));
-- Until now only the engine's "no usable account" pause carried a reason.
UPDATE campaigns SET pause_cause = 'no_usable_account' WHERE status = 'paused' AND pause_reason IS NOT NULL;
