import type { Command } from 'commander';
import { clientAction } from './command.ts';

/** `users create` (admin key). */
export function registerUserCommands(program: Command): void {
  const users = program.command('users').description('users and their API keys (needs the admin key)');
  users
    .command('create')
    .description('create a user; prints its API key, shown only this once')
    .requiredOption('--name <name>', 'display name')
    .requiredOption('--email <email>', 'contact address of the user')
    .action(
      clientAction(async ({ client, print }, opts: { name: string; email: string }) => {
        const user = await client.request('POST', '/api/v1/users', { name: opts.name, email: opts.email });
        print(user, `User ${user.id} (${user.name}) created.\nAPI key (shown only now): ${user.apiKey}`);
      }),
    );
}
