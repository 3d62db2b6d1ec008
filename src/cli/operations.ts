import type { Command } from 'commander';
import { loadConfig, type Config } from '../config.ts';

/** Where the embedded database of an install lives. */
const embeddedDir = (config: Config) => `${config.dataDir}/pglite`;

/** The embedded database only: a PostgreSQL server is backed up with its own tools. */
function requireEmbedded(program: Command, config: Config, what: string): void {
  if (config.databaseUrl) program.error(`mailpilot ${what} works on the embedded database; with DATABASE_URL set, use pg_dump and pg_restore`);
}

/** `backup FILE`, `restore FILE`, `migrate-to DATABASE_URL` (README "Backups and moving to PostgreSQL"). */
export function registerOperationCommands(program: Command): void {
  program
    .command('backup')
    .argument('<file>', 'the file to write (must not exist yet)')
    .description('save the embedded database to FILE; MailPilot must be stopped (PostgreSQL: use pg_dump)')
    .action(async (file: string) => {
      const config = loadConfig();
      requireEmbedded(program, config, 'backup');
      const { backupEmbedded } = await import('../db/embeddedBackup.ts');
      const bytes = await run('backup', () => backupEmbedded(embeddedDir(config), file));
      if (bytes === undefined) return;
      process.stdout.write(
        `Saved the embedded database to ${file} (${bytes} bytes).\n` +
          'The SMTP passwords in it are encrypted with the secret key (MAILPILOT_SECRET_KEY or secret.key in the data dir): keep that key too, apart from the backup.\n',
      );
    });

  program
    .command('restore')
    .argument('<file>', 'a file written by mailpilot backup')
    .description('replace the embedded database with the backup in FILE; MailPilot must be stopped (the replaced one is kept aside)')
    .action(async (file: string) => {
      const config = loadConfig();
      requireEmbedded(program, config, 'restore');
      const { restoreEmbedded } = await import('../db/embeddedBackup.ts');
      const previous = await run('restore', () => restoreEmbedded(embeddedDir(config), file, new Date()));
      if (previous === undefined) return;
      process.stdout.write(
        `Restored the embedded database from ${file}.\n` +
          (previous ? `The database it replaced is kept in ${previous}: delete it once the restored one is checked.\n` : ''),
      );
    });

  program
    .command('migrate-to')
    .argument('<database-url>', 'an empty PostgreSQL database, postgres://user:password@host:port/name')
    .description('copy the embedded database into an empty PostgreSQL database (every table, sequences reset); MailPilot must be stopped')
    .action(async (url: string) => {
      const config = loadConfig();
      if (config.databaseUrl) program.error('mailpilot migrate-to copies the embedded database: unset DATABASE_URL and give the target as the argument');
      if (!/^postgres(ql)?:\/\//.test(url)) program.error('the target must be a postgres:// or postgresql:// URL');
      const [{ openDatabase }, { migrate }, { copyDatabase }] = await Promise.all([
        import('../db/database.ts'),
        import('../db/migrate.ts'),
        import('../db/copyDatabase.ts'),
      ]);
      const copied = await run('migrate-to', async () => {
        const source = await openDatabase({ dataDir: embeddedDir(config) });
        try {
          await migrate(source);
          const target = await openDatabase({ url, poolSize: 2 });
          try {
            await migrate(target);
            return await copyDatabase(source, target);
          } finally {
            await target.close();
          }
        } finally {
          await source.close();
        }
      });
      if (copied === undefined) return;
      for (const c of copied) process.stdout.write(`${c.table}\t${c.rows}\n`);
      process.stdout.write(
        `Copied ${copied.reduce((n, c) => n + c.rows, 0)} rows in ${copied.length} tables.\n` +
          'Start MailPilot with DATABASE_URL set to that database and the same secret key (MAILPILOT_SECRET_KEY or secret.key in the data dir) and admin key.\n',
      );
    });
}

/**
 * Runs an operation; its failure is one line on stderr (no usage text: the command line was right)
 * and exit code 1. Resolves undefined then.
 */
async function run<T>(what: string, fn: () => Promise<T>): Promise<T | undefined> {
  try {
    return await fn();
  } catch (err) {
    process.stderr.write(`mailpilot ${what}: ${(err as Error).message}\n`);
    process.exitCode = 1;
    return undefined;
  }
}
