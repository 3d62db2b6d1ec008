import type { Command } from 'commander';
import { clientAction, positiveInt } from './command.ts';

const describe = (c: any) =>
  `${c.id}\tlist ${c.listId} (${c.listName})\t${c.email}\t${c.name ?? ''}\t${c.verification?.status ?? 'not verified'}${c.suppressed ? '\tsuppressed' : ''}`;

/** `contacts find|show|delete|verify|export|erase`: one address or contact at a time. */
export function registerContactCommands(program: Command): void {
  const contacts = program.command('contacts').description('contacts and data-protection requests');

  contacts
    .command('find')
    .description('the address on every list')
    .argument('<email>', 'the address')
    .action(
      clientAction(async ({ client, print }, email: string) => {
        const found = await client.request('GET', `/api/v1/contacts?email=${encodeURIComponent(email)}`);
        print(found, found.items.length ? found.items.map(describe).join('\n') : `${email} is on no list.`);
      }),
    );

  contacts
    .command('show')
    .description('one contact')
    .argument('<list>', 'id of its list', positiveInt('list'))
    .argument('<id>', 'id of the contact', positiveInt('id'))
    .action(
      clientAction(async ({ client, print }, list: number, id: number) => {
        const contact = await client.request('GET', `/api/v1/lists/${list}/contacts/${id}`);
        print(contact, `${describe(contact)}\n${JSON.stringify(contact.attributes)}`);
      }),
    );

  contacts
    .command('delete')
    .description('delete one contact from its list')
    .argument('<list>', 'id of its list', positiveInt('list'))
    .argument('<id>', 'id of the contact', positiveInt('id'))
    .action(
      clientAction(async ({ client, print }, list: number, id: number) => {
        await client.request('DELETE', `/api/v1/lists/${list}/contacts/${id}`);
        print({ id, deleted: true }, `Contact ${id} deleted.`);
      }),
    );

  contacts
    .command('verify')
    .description('verify one contact now (syntax, mail domain, disposable, role) and keep the result')
    .argument('<list>', 'id of its list', positiveInt('list'))
    .argument('<id>', 'id of the contact', positiveInt('id'))
    .action(
      clientAction(async ({ client, print }, list: number, id: number) => {
        const contact = await client.request('POST', `/api/v1/lists/${list}/contacts/${id}/verify`);
        const v = contact.verification;
        print(contact, `${contact.email}: ${v.status}${v.reasons.length ? ` (${v.reasons.join(', ')})` : ''}`);
      }),
    );

  contacts
    .command('export')
    .description('everything held about an address, as JSON (a data-protection access request)')
    .argument('<email>', 'the address')
    .action(
      clientAction(async ({ client, print }, email: string) => {
        const held = await client.request('GET', `/api/v1/contacts/export?email=${encodeURIComponent(email)}`);
        print(held, JSON.stringify(held, null, 2));
      }),
    );

  contacts
    .command('erase')
    .description('erase an address everywhere (a data-protection erasure request); it stays suppressed')
    .argument('<email>', 'the address')
    .action(
      clientAction(async ({ client, print }, email: string) => {
        const erased = await client.request('POST', '/api/v1/contacts/erase', { email });
        print(erased, `${email}: ${erased.erasedContacts} contacts and ${erased.erasedMessages} messages erased; the address stays suppressed.`);
      }),
    );
}
