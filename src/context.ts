import type { Clock } from './clock.ts';
import type { Config } from './config.ts';
import type { Database } from './db/database.ts';
import type { Events } from './events.ts';
import type { Logger } from './log.ts';
import type { Secrets } from './secrets.ts';

/** What every part of a running MailPilot shares. */
export interface AppContext {
  config: Config;
  db: Database;
  clock: Clock;
  secrets: Secrets;
  events: Events;
  log: Logger;
}
