import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LIMIT_WINDOW_KINDS } from '../src/sendingPolicy/limitWindows.ts';
import { PRESET_NAMES } from '../src/sendingPolicy/presets.ts';
import {
  BOUNCE_TYPES,
  CAMPAIGN_STATUSES,
  HEALTH_STATES,
  MAILBOX_STATES,
  MESSAGE_STATUSES,
  PAUSE_REASONS,
  SECURITY_MODES,
  SUPPRESSION_REASONS,
} from '../src/states.ts';
import { databaseKinds, freshDatabase, type TestDatabase } from './helpers/db.ts';

/** Each state machine's names, as src/states.ts declares them and as the schema's CHECK constraints allow them. */
const COLUMNS: [table: string, column: string, names: readonly string[]][] = [
  ['campaigns', 'status', CAMPAIGN_STATUSES],
  ['messages', 'status', MESSAGE_STATUSES],
  ['smtp_accounts', 'health', HEALTH_STATES],
  ['smtp_servers', 'security', SECURITY_MODES],
  ['suppressions', 'reason', SUPPRESSION_REASONS],
  ['messages', 'bounce_type', BOUNCE_TYPES],
  ['account_mailboxes', 'state', MAILBOX_STATES],
  ['account_mailboxes', 'security', SECURITY_MODES],
  ['campaigns', 'pause_code', PAUSE_REASONS],
  ['smtp_accounts', 'limit_window', LIMIT_WINDOW_KINDS],
  ['smtp_accounts', 'preset', PRESET_NAMES],
  ['domain_caps', 'limit_window', LIMIT_WINDOW_KINDS],
];

describe.each(databaseKinds)('state names are declared once (%s)', (kind) => {
  let t: TestDatabase;
  beforeAll(async () => {
    t = await freshDatabase(kind);
  });
  afterAll(async () => {
    await t.drop();
  });

  it.each(COLUMNS)('%s.%s allows exactly the names src/states.ts declares', async (table, column, names) => {
    const rows = await t.db.query<{ def: string }>(
      `SELECT pg_get_constraintdef(c.oid) AS def
         FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey)
        WHERE c.contype = 'c' AND c.conrelid = $1::regclass AND a.attname = $2`,
      [table, column],
    );
    expect(rows).toHaveLength(1);
    const allowed = [...rows[0]!.def.matchAll(/'([^']+)'/g)].map((m) => m[1]);
    expect(allowed.sort()).toEqual([...names].sort());
  });
});
