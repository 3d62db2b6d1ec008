import type { Command } from 'commander';
import { clientAction, count, positiveInt } from './command.ts';

interface AccountOptions {
  server: number;
  email: string;
  username?: string;
  password?: string;
  passwordStdin?: boolean;
  hourlyLimit?: number;
  dailyLimit?: number;
  rate?: string;
  timezone?: string;
  inactive?: boolean;
  oauth2ClientId?: string;
  oauth2TokenUrl?: string;
  oauth2User?: string;
  oauth2SecretsStdin?: boolean;
  preset?: string;
  rolling?: boolean;
}

/** `auth` for an OAuth2 account: the client secret and the refresh token come from stdin, one a line (never argv, which others can read). */
async function oauth2Auth(o: AccountOptions): Promise<Record<string, string> | undefined> {
  if (!o.oauth2ClientId && !o.oauth2TokenUrl && !o.oauth2SecretsStdin) return undefined;
  if (!o.oauth2ClientId || !o.oauth2TokenUrl || !o.oauth2SecretsStdin) {
    throw new Error('an OAuth2 account needs --oauth2-client-id, --oauth2-token-url and --oauth2-secrets-stdin together');
  }
  const [clientSecret, refreshToken] = (await readStdin()).split(/\r?\n/);
  if (!clientSecret || !refreshToken) throw new Error('--oauth2-secrets-stdin: give the client secret on the first line of standard input and the refresh token on the second');
  return { type: 'oauth2', clientId: o.oauth2ClientId, clientSecret, refreshToken, tokenUrl: o.oauth2TokenUrl, ...(o.oauth2User ? { user: o.oauth2User } : {}) };
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

function usageText(a: any): string {
  const limit = (n: number) => (n === 0 ? 'no limit' : String(n));
  const health = a.health.state + (a.health.reason ? ` (${a.health.reason})` : '');
  const next = a.usage.nextSendAt ? `\tnext send ${a.usage.nextSendAt}` : '';
  return `${a.id}\t${a.email}\thour ${a.usage.sentThisHour}/${limit(a.usage.hourlyLimit)}\tday ${a.usage.sentToday}/${limit(a.usage.effectiveDailyLimit ?? a.usage.dailyLimit)}\t${health}${next}`;
}

/** `smtp add-server`, `smtp add-account`, `smtp accounts`, `smtp resume-account`. */
export function registerSmtpCommands(program: Command): void {
  const smtp = program.command('smtp').description('SMTP servers and the accounts that send through them');

  smtp
    .command('add-server')
    .description('add an SMTP server')
    .requiredOption('--name <name>', 'a name for it')
    .requiredOption('--host <host>', 'hostname or IP address')
    .requiredOption('--port <port>', 'TCP port', positiveInt('--port'))
    .option('--security <mode>', 'none, starttls or tls', 'starttls')
    .option('--max-connections <n>', 'SMTP sessions its accounts may open together', positiveInt('--max-connections'))
    .action(
      clientAction(async ({ client, print }, o: { name: string; host: string; port: number; security: string; maxConnections?: number }) => {
        const server = await client.request('POST', '/api/v1/smtp-servers', {
          name: o.name,
          host: o.host,
          port: o.port,
          security: o.security,
          ...(o.maxConnections ? { maxConnections: o.maxConnections } : {}),
        });
        print(server, `SMTP server ${server.id} (${server.name}, ${server.host}:${server.port}) added.`);
      }),
    );

  smtp
    .command('add-account')
    .description('add a sending account on a server, with its hourly and daily limits')
    .requiredOption('--server <id>', 'id of the SMTP server', positiveInt('--server'))
    .requiredOption('--email <address>', 'the address it sends from')
    .option('--hourly-limit <n>', 'sends per clock hour (0 = no limit); required unless --preset gives it', count('--hourly-limit'))
    .option('--daily-limit <n>', 'sends per calendar day (0 = no limit); required unless --preset gives it', count('--daily-limit'))
    .option('--preset <provider>', 'gmail, google_workspace, microsoft365 or ses: limits, window and pace from the provider')
    .option('--rolling', 'count the limits over any 60 minutes and 24 hours, as providers do')
    .option('--username <name>', 'SMTP login (default: none)')
    .option('--password <password>', 'SMTP password (visible to other local users in the process list: prefer --password-stdin)')
    .option('--password-stdin', 'read the SMTP password from standard input')
    .option('--rate <perSecond>', 'at most this many sends per second')
    .option('--timezone <zone>', 'IANA zone in which its day starts (default UTC)')
    .option('--inactive', 'add it switched off')
    .option('--oauth2-client-id <id>', 'OAuth2 (XOAUTH2) instead of a password: the client id of your app registration')
    .option('--oauth2-token-url <url>', 'OAuth2: the token endpoint (Google: https://oauth2.googleapis.com/token)')
    .option('--oauth2-user <address>', 'OAuth2: the mailbox to log in as, when it is not --email')
    .option('--oauth2-secrets-stdin', 'OAuth2: read the client secret (first line) and the refresh token (second line) from standard input')
    .action(
      clientAction(async ({ client, print }, o: AccountOptions) => {
        const auth = await oauth2Auth(o);
        const password = o.passwordStdin ? await readStdin() : o.password;
        const account = await client.request('POST', '/api/v1/smtp-accounts', {
          serverId: o.server,
          email: o.email,
          ...(o.hourlyLimit !== undefined ? { hourlyLimit: o.hourlyLimit } : {}),
          ...(o.dailyLimit !== undefined ? { dailyLimit: o.dailyLimit } : {}),
          ...(o.preset ? { preset: o.preset } : {}),
          ...(o.rolling ? { limitWindow: 'rolling' } : {}),
          ...(o.username ? { username: o.username } : {}),
          ...(password ? { password } : {}),
          ...(auth ? { auth } : {}),
          ...(o.rate ? { ratePerSecond: Number(o.rate) } : {}),
          ...(o.timezone ? { timezone: o.timezone } : {}),
          ...(o.inactive ? { active: false } : {}),
        });
        print(account, `SMTP account ${account.id} (${account.email}) added.`);
      }),
    );

  smtp
    .command('accounts')
    .description("list the SMTP accounts with this hour's and today's usage and their health")
    .action(
      clientAction(async ({ client, print }) => {
        const accounts = await client.request('GET', '/api/v1/smtp-accounts?limit=1000');
        print(accounts, accounts.items.length ? accounts.items.map(usageText).join('\n') : 'No SMTP accounts yet.');
      }),
    );

  smtp
    .command('resume-account')
    .description('lift the pause of an account paused for its bounce or complaint rate (check the list first)')
    .requiredOption('--account <id>', 'id of the SMTP account', positiveInt('--account'))
    .action(
      clientAction(async ({ client, print }, o: { account: number }) => {
        const account = await client.request('PATCH', `/api/v1/smtp-accounts/${o.account}`, { resume: true });
        print(account, `SMTP account ${account.id} (${account.email}): ${account.health.state}.`);
      }),
    );
}
