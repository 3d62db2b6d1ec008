import { describe, expect, it } from 'vitest';
import { DeliveryTally } from '../bench/lib/deliveryTally.ts';

/** One transaction as smtp-sink -D writes it (captured from Postfix 3.7's smtp-sink). */
function record(rcpt: string, messageId: string | null = `<1.${rcpt}.x@h>`): string {
  return [
    'X-Client-Addr: 127.0.0.1',
    'X-Client-Proto: ESMTP',
    'X-Helo-Args: [127.0.0.1]',
    'X-Mail-Args: <a@b.test>',
    `X-Rcpt-Args: <${rcpt}>`,
    'Received: from [127.0.0.1] ([127.0.0.1])',
    '\tby smtp-sink (smtp-sink) with ESMTP id 6c176c68;',
    '\tThu, 26 Nov 2026 19:59:28 +0000 (UTC)',
    'From: a@b.test',
    `To: ${rcpt}`,
    ...(messageId ? [`Message-ID: ${messageId}`] : []),
    'Content-Type: text/plain; charset=utf-8',
    '',
    'hello',
    '',
    'a body line that mentions X-Client-Addr: and X-Rcpt-Args: <rcpt9@sink.test>',
    '',
    '',
  ].join('\n');
}

function tally(expected: number, dump: string, chunk = dump.length) {
  const t = new DeliveryTally(expected);
  const bytes = Buffer.from(dump, 'latin1');
  for (let i = 0; i < bytes.length; i += chunk) t.write(bytes.subarray(i, i + chunk));
  return t.verdict();
}

describe('DeliveryTally (bench exactly-once check)', () => {
  it('passes when every expected recipient got exactly one message, however the stream is cut', () => {
    const dump = record('rcpt0@sink.test') + record('rcpt1@sink.test') + record('rcpt2@sink.test');
    for (const chunk of [1, 7, 15, 16, 17, 100, dump.length]) {
      expect(tally(3, dump, chunk)).toMatchObject({ messages: 3, missing: 0, duplicated: 0, unexpected: 0, malformed: 0, exactlyOnce: true });
    }
  });

  it('flags a lost, a doubled and a stray recipient', () => {
    const dump = record('rcpt0@sink.test') + record('rcpt1@sink.test') + record('rcpt1@sink.test') + record('someone@else.test');
    expect(tally(3, dump, 13)).toMatchObject({
      messages: 4,
      missing: 1,
      duplicated: 1,
      unexpected: 1,
      exactlyOnce: false,
      examples: { missing: ['rcpt2@sink.test'], duplicated: ['rcpt1@sink.test'], unexpected: ['someone@else.test'] },
    });
  });

  it('counts a recipient beyond the expected range as unexpected, and a message without Message-ID as malformed', () => {
    expect(tally(1, record('rcpt0@sink.test') + record('rcpt1@sink.test'))).toMatchObject({ unexpected: 1, exactlyOnce: false });
    expect(tally(1, record('rcpt0@sink.test', null))).toMatchObject({ malformed: 1, exactlyOnce: false });
  });
});
