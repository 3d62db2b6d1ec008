/**
 * Render benchmark: the CPU cost of one message's MIME as the engine builds it (templates merged,
 * quoted-printable, headers), unsigned and DKIM-signed with 1024- and 2048-bit RSA keys, and with
 * the text part derived from the HTML. The throughput target (~2,500 msg/s on 2 cores) leaves
 * a few hundred µs of CPU per message for everything, so this says what DKIM costs of it.
 *
 *   npx tsx bench/render.ts
 *
 * BENCH_RENDER_MESSAGES (5000) messages per variant; stdout gets one JSON line.
 */
import { generateKeyPairSync } from 'node:crypto';
import { loadavg } from 'node:os';
import { compileCampaign } from '../src/campaigns/template.ts';
import { dkimKey, type DkimKey } from '../src/smtp/dkim.ts';
import { messageSkeleton, renderMessage } from '../src/smtp/mime.ts';
import { contact, FROM_NAME, HTML_TEMPLATE, SUBJECT, TEXT_TEMPLATE } from './lib/content.ts';
import { machine, printResult } from './lib/report.ts';

const WARMUP = 500;

function key(bits: number): DkimKey {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: bits });
  return dkimKey('bench.test', 'mp', privateKey.export({ type: 'pkcs8', format: 'pem' }).toString());
}

function measure(messages: number, textTemplate: string | null, dkim: DkimKey | undefined): { usPerMessage: number; bytes: number } {
  const templates = compileCampaign({ subject: SUBJECT, html: HTML_TEMPLATE, text: textTemplate });
  const skeleton = messageSkeleton({ campaignId: 1, fromName: FROM_NAME, replyTo: null });
  let bytes = 0;
  const one = (i: number) => {
    const c = contact(i);
    const vars = { name: c.name, email: c.email, attributes: { city: c.city }, unsubscribeUrl: `https://mp.bench.test/u/token${i}.mac${i}` };
    const raw = renderMessage(
      skeleton,
      {
        from: 'sender@bench.test',
        to: c.email,
        toName: c.name,
        subject: templates.subject(vars),
        html: templates.html?.(vars),
        text: templates.text?.(vars),
        messageId: `<1.${i}.x@bench.test>`,
        unsubscribeUrl: vars.unsubscribeUrl,
        date: new Date(),
      },
      dkim,
    );
    bytes += raw.length;
  };
  for (let i = 0; i < WARMUP; i++) one(i);
  bytes = 0;
  const started = performance.now();
  for (let i = 0; i < messages; i++) one(i);
  const ms = performance.now() - started;
  return { usPerMessage: Math.round((ms * 1000) / messages), bytes: Math.round(bytes / messages) };
}

const messages = Number(process.env.BENCH_RENDER_MESSAGES ?? 5000);
const loadAtStart = loadavg()[0]!;
const result = {
  bench: 'render',
  messages,
  unsigned: measure(messages, TEXT_TEMPLATE, undefined),
  textDerivedFromHtml: measure(messages, null, undefined),
  dkimRsa1024: measure(messages, TEXT_TEMPLATE, key(1024)),
  dkimRsa2048: measure(messages, TEXT_TEMPLATE, key(2048)),
  machine: machine(loadAtStart),
};
printResult(result);
