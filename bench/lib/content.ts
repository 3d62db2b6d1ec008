/**
 * The campaign both contenders send: MailPilot renders these templates itself, the raw ceiling
 * pre-renders them with the same substitutions, so both put messages of the same size on the wire.
 * Lines stay ASCII and under 76 characters so that MIME needs no transfer encoding either way.
 */

export const SUBJECT = 'Hello {{name}}';
export const FROM_NAME = 'MailPilot Bench';

const CITIES = ['Lisbon', 'Oslo', 'Porto', 'Lyon', 'Graz', 'Turku', 'Ghent', 'Bern'];

const SENTENCES = [
  'Our spring catalogue is out, with more than forty new items in stock.',
  'Every order placed this week ships free to any address in the country.',
  'Members get early access to the sale and a second discount at checkout.',
  'The new store opens its doors on Saturday morning at nine o clock sharp.',
  'Reply to this message if you would like a printed copy sent to you.',
  'We have also refreshed the size guide and added more colours to choose.',
];

function paragraphs(count: number, city: string): string[] {
  const out: string[] = [];
  for (let p = 0; p < count; p++) {
    const lines: string[] = [];
    for (let l = 0; l < 4; l++) lines.push(SENTENCES[(p + l) % SENTENCES.length]!);
    if (p % 3 === 0) lines.push(`Customers around ${city} can also pick up in store.`);
    out.push(lines.join('\n'));
  }
  return out;
}

const CITY = '{{attributes.city}}';

export const HTML_TEMPLATE = [
  '<!doctype html>',
  '<html><body style="font-family: Arial, sans-serif; color: #222">',
  '<h1 style="font-size: 20px">Hello {{name}},</h1>',
  ...paragraphs(8, CITY).map((p) => `<p style="line-height: 1.5">\n${p}\n</p>`),
  '<p style="font-size: 12px; color: #777">',
  'This message was sent to {{email}} because you joined our list.',
  '</p>',
  '</body></html>',
].join('\n');

export const TEXT_TEMPLATE = ['Hello {{name}},', ...paragraphs(4, CITY), 'This message was sent to {{email}}.'].join('\n\n');

export interface Contact {
  email: string;
  name: string;
  city: string;
}

export function contact(i: number): Contact {
  return { email: `rcpt${i}@sink.test`, name: `Person ${i}`, city: CITIES[i % CITIES.length]! };
}

/** The i of the contact(i) with this address, or undefined when no contact has it. */
export function contactIndex(email: string): number | undefined {
  const digits = /^rcpt(0|[1-9]\d*)@sink\.test$/.exec(email)?.[1];
  return digits === undefined ? undefined : Number(digits);
}

/** Substitutes the three merge fields; contact values are plain ASCII words, so HTML needs no escaping. */
export function personalise(template: string, c: Contact): string {
  return template.replaceAll('{{name}}', c.name).replaceAll('{{email}}', c.email).replaceAll(CITY, c.city);
}

/** Rows per chunk of a generated upload. */
const CSV_CHUNK_ROWS = 2000;

/**
 * Contacts `from` ≤ i < `to` as a CSV file with a header row (`city` becomes `attributes.city`),
 * generated as it is read, so that uploading a million rows holds no copy of them. `onProgress`
 * gets the number of rows handed out so far.
 */
export function contactsCsvStream(from: number, to: number, onProgress?: (rows: number) => void): ReadableStream<Uint8Array> {
  const encoder = new TextEncoder();
  let next = from;
  return new ReadableStream({
    start(controller) {
      controller.enqueue(encoder.encode('email,name,city\n'));
    },
    pull(controller) {
      if (next >= to) {
        controller.close();
        return;
      }
      const end = Math.min(next + CSV_CHUNK_ROWS, to);
      let chunk = '';
      for (let i = next; i < end; i++) {
        const c = contact(i);
        chunk += `${c.email},${c.name},${c.city}\n`;
      }
      next = end;
      onProgress?.(next - from);
      controller.enqueue(encoder.encode(chunk));
    },
  });
}
