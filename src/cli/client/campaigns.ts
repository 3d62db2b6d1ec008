import { readFileSync } from 'node:fs';
import { InvalidArgumentError, type Command } from 'commander';
import { formatNumber, percentDone } from '../../web/lib/format.js';
import { clientAction, positiveInt } from './command.ts';
import { EXIT } from './exitCodes.ts';
import { summary, watchCampaign, type CampaignView } from './watch.ts';

interface CreateOptions {
  name: string;
  list: number[];
  subject: string;
  html?: string;
  htmlFile?: string;
  text?: string;
  textFile?: string;
  fromName?: string;
  replyTo?: string;
  scheduledAt?: string;
}

function listIds(value: string, previous: number[] = []): number[] {
  const ids = value.split(',').map((s) => s.trim());
  if (ids.some((s) => !/^\d+$/.test(s) || Number(s) < 1)) throw new InvalidArgumentError(`--list takes list ids such as 3 or 3,4, got "${value}"`);
  return [...previous, ...ids.map(Number)];
}

export function describeCampaign(c: CampaignView & { startedAt?: string | null; completedAt?: string | null }): string {
  const lines = [
    `Campaign ${c.id}: ${c.name}`,
    `status      ${c.status}${c.status === 'paused_limits' && c.resumeAt ? ` (resumes at ${c.resumeAt})` : ''}`,
    `progress    ${formatNumber(c.total - c.pending)}/${formatNumber(c.total)} (${Math.floor(percentDone(c))}%)`,
    `sent ${formatNumber(c.sent)} · failed ${formatNumber(c.failed)} · suppressed ${formatNumber(c.suppressed)} · cancelled ${formatNumber(c.cancelled)} · pending ${formatNumber(c.pending)}`,
  ];
  if (c.startedAt) lines.push(`started     ${c.startedAt}`);
  if (c.completedAt) lines.push(`ended       ${c.completedAt}`);
  for (const w of c.warnings) lines.push(`warning: ${w}`);
  return lines.join('\n');
}

/** `campaigns create|list|show|start|pause|resume|stop|watch`. */
export function registerCampaignCommands(program: Command): void {
  const campaigns = program.command('campaigns').description('create campaigns, control them and follow their progress');

  campaigns
    .command('create')
    .description('create a draft campaign; {{name}}, {{email}} and {{attributes.X}} personalise subject and bodies')
    .requiredOption('--name <name>', 'name of the campaign')
    .requiredOption('--list <ids>', 'list id(s) to send to: 3, or 3,4, or repeat the option', listIds)
    .requiredOption('--subject <subject>', 'subject line')
    .option('--html <html>', 'HTML body')
    .option('--html-file <path>', 'read the HTML body from a file')
    .option('--text <text>', 'plain-text body')
    .option('--text-file <path>', 'read the plain-text body from a file')
    .option('--from-name <name>', 'display name in From')
    .option('--reply-to <address>', 'Reply-To address')
    .option('--scheduled-at <time>', 'ISO-8601 time to start by itself')
    .action(
      clientAction(async ({ client, print }, o: CreateOptions) => {
        const html = o.htmlFile ? readFileSync(o.htmlFile, 'utf8') : o.html;
        const text = o.textFile ? readFileSync(o.textFile, 'utf8') : o.text;
        const campaign = await client.request('POST', '/api/v1/campaigns', {
          name: o.name,
          listIds: o.list,
          subject: o.subject,
          ...(html !== undefined ? { html } : {}),
          ...(text !== undefined ? { text } : {}),
          ...(o.fromName ? { fromName: o.fromName } : {}),
          ...(o.replyTo ? { replyTo: o.replyTo } : {}),
          ...(o.scheduledAt ? { scheduledAt: o.scheduledAt } : {}),
        });
        print(campaign, `Campaign ${campaign.id} (${campaign.name}) created as ${campaign.status}. Start it with: mailpilot campaigns start ${campaign.id}`);
      }),
    );

  campaigns
    .command('list')
    .description('list campaigns with their status and progress')
    .action(
      clientAction(async ({ client, print }) => {
        const all = await client.request<{ items: CampaignView[] }>('GET', '/api/v1/campaigns?limit=1000');
        const line = (c: CampaignView) => `${c.id}\t${c.status}\t${formatNumber(c.total - c.pending)}/${formatNumber(c.total)}\t${c.name}`;
        print(all, all.items.length ? all.items.map(line).join('\n') : 'No campaigns yet.');
      }),
    );

  campaigns
    .command('show')
    .description('show a campaign: status, counters, warnings')
    .argument('<id>', 'campaign id', positiveInt('id'))
    .action(
      clientAction(async ({ client, print }, id: number) => {
        const c = await client.request('GET', `/api/v1/campaigns/${id}`);
        print(c, describeCampaign(c));
      }),
    );

  const actions = {
    start: 'build the queue from its lists and start sending',
    pause: 'pause sending (sends in flight finish)',
    resume: 'resume a paused campaign',
    stop: 'stop for good; what is still queued is cancelled',
  };
  for (const [action, description] of Object.entries(actions)) {
    campaigns
      .command(action)
      .description(description)
      .argument('<id>', 'campaign id', positiveInt('id'))
      .action(
        clientAction(async ({ client, print }, id: number) => {
          const c = await client.request('POST', `/api/v1/campaigns/${id}/${action}`);
          print(c, `Campaign ${c.id} is ${c.status}.`);
        }),
      );
  }

  campaigns
    .command('watch')
    .description('follow a campaign with a live progress bar until it is completed (exit 0) or stopped (exit 8)')
    .argument('<id>', 'campaign id', positiveInt('id'))
    .action(
      clientAction(async ({ client, json }, id: number) => {
        const final = await watchCampaign(client, id, { json, out: process.stdout });
        if (!json) process.stdout.write(summary(final) + '\n');
        return final.status === 'completed' ? EXIT.ok : EXIT.stopped;
      }),
    );
}
