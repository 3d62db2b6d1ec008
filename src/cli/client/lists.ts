import type { Command } from 'commander';
import { describeImport, importListFile } from '../listImport.ts';
import { clientAction, positiveInt } from './command.ts';
import { ApiCallError, ApiClient } from './http.ts';

/** `lists create`, `lists show`, `lists delete`, `lists verify`, `lists import FILE.csv|FILE.xlsx`. */
export function registerListCommands(program: Command): void {
  const lists = program.command('lists').description('contact lists');

  lists
    .command('create')
    .description('create an empty list')
    .argument('<name>', 'name of the list')
    .action(
      clientAction(async ({ client, print }, name: string) => {
        const list = await client.request('POST', '/api/v1/lists', { name });
        print(list, `List ${list.id} (${list.name}) created.`);
      }),
    );

  lists
    .command('show')
    .description('show one list, or all lists, with their contact counts')
    .argument('[id]', 'id of the list', positiveInt('id'))
    .action(
      clientAction(async ({ client, print }, id?: number) => {
        if (id !== undefined) {
          const list = await client.request('GET', `/api/v1/lists/${id}`);
          print(list, `${list.id}\t${list.name}\t${list.contactCount} contacts`);
          return;
        }
        const all = await client.request('GET', '/api/v1/lists?limit=1000');
        print(all, all.items.length ? all.items.map((l: any) => `${l.id}\t${l.name}\t${l.contactCount} contacts`).join('\n') : 'No lists yet.');
      }),
    );

  lists
    .command('delete')
    .description('delete a list and its contacts (campaigns already started keep their queue)')
    .argument('<id>', 'id of the list', positiveInt('id'))
    .action(
      clientAction(async ({ client, print }, id: number) => {
        await client.request('DELETE', `/api/v1/lists/${id}`);
        print({ id, deleted: true }, `List ${id} deleted.`);
      }),
    );

  lists
    .command('verify')
    .description('verify every address of a list (syntax, mail domain, disposable, role), a page at a time')
    .argument('<id>', 'id of the list', positiveInt('id'))
    .action(
      clientAction(async ({ client, print }, id: number) => {
        const total = { verified: 0, deliverable: 0, undeliverable: 0, risky: 0, unknown: 0 };
        for (let after = 0; ; ) {
          const page = await client.request('POST', `/api/v1/lists/${id}/verify?limit=10000&after=${after}`);
          for (const k of Object.keys(total) as (keyof typeof total)[]) total[k] += page[k];
          if (page.next === null) break;
          after = page.next;
        }
        print(total, `List ${id}: ${total.verified} verified: ${total.deliverable} deliverable, ${total.undeliverable} undeliverable, ${total.risky} risky, ${total.unknown} unknown.`);
      }),
    );

  lists
    .command('import')
    .description('import a CSV or .xlsx file (header row with an email column; other columns become attributes), with a progress bar')
    .argument('<file>', 'the CSV file (, ; tab or | separated) or .xlsx workbook (its first sheet)')
    .option('--list <id>', 'the list to import into (default: a new list named after the file)', positiveInt('--list'))
    .option('--name <name>', 'name of the new list')
    .option('--charset <name>', 'the CSV file\'s encoding, e.g. windows-1252 (default: UTF-8, or windows-1252 when the file is not UTF-8)')
    .option('--verify', 'verify each address (syntax, mail domain, disposable, role) as it is imported')
    .action(async (file: string, opts: { list?: number; name?: string; charset?: string; verify?: boolean }, command: Command) => {
      const json = Boolean(command.optsWithGlobals().json);
      try {
        const { listId, result } = await importListFile(ApiClient.withKeyFromEnv(), file, { ...opts, progress: !json && process.stderr.isTTY });
        process.stdout.write(json ? `${JSON.stringify({ listId, ...result })}\n` : describeImport(listId, result));
      } catch (err) {
        program.error(err instanceof ApiCallError ? err.describe() : (err as Error).message);
      }
    });
}
