import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from './helpers/db.ts';
import { must } from './helpers/fixtures.ts';
import { startTestMailPilot, type TestMailPilot } from './helpers/mailpilot.ts';

const ROWS = 200_000;
const MB = 1024 * 1024;
const MAX_GROWTH_MB = 100;
/** Rows already on the list before the big import (imported again, they count as updated). */
const EXISTING = 1000;

/**
 * The big file, generated while it is uploaded: row i is contact i, except that every 1000th row
 * repeats an address of 500 rows earlier (in upper case), and every 997th row has a broken address.
 */
function bigCsv(): { stream: ReadableStream<Uint8Array>; expected: { added: number; updated: number; duplicates: number; invalid: number[] } } {
  const expected = { added: 0, updated: 0, duplicates: 0, invalid: [] as number[] };
  for (let row = 1; row <= ROWS; row++) {
    if (row % 997 === 0) expected.invalid.push(row);
    else if (row % 1000 === 0) expected.duplicates++;
    else if (row <= EXISTING) expected.updated++;
    else expected.added++;
  }
  const line = (row: number) => {
    if (row % 997 === 0) return `broken-${row},Broken,x\n`;
    if (row % 1000 === 0) return `C${row - 500}@BIG.TEST,Again,y\n`;
    return `c${row}@big.test,Contact ${row},City${row % 13}\n`;
  };
  const encoder = new TextEncoder();
  let next = 1;
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (next === 1) controller.enqueue(encoder.encode('email,name,city\n'));
      if (next > ROWS) return controller.close();
      let chunk = '';
      for (const end = Math.min(next + 2000, ROWS + 1); next < end; next++) chunk += line(next);
      controller.enqueue(encoder.encode(chunk));
    },
  });
  return { stream, expected };
}

describe.each(databaseKinds)('imports at scale (%s)', (kind) => {
  let t: TestMailPilot;
  beforeAll(async () => {
    t = await startTestMailPilot(kind, { engine: false });
  });
  afterAll(() => t.close());

  it(`streams a ${ROWS.toLocaleString('en')}-row CSV through the API with exact counts and flat memory`, { timeout: 300_000 }, async () => {
    const { apiKey } = await t.createUser();
    const list = await must(t, apiKey, 'POST', '/api/v1/lists', { name: 'big' });
    const existing = ['email', ...Array.from({ length: EXISTING }, (_, i) => `c${i + 1}@big.test`)].join('\n');
    const first = await t.api('POST', `/api/v1/lists/${list.id}/contacts`, { key: apiKey, body: existing, contentType: 'text/csv' });
    expect(first.body).toMatchObject({ added: EXISTING, updated: 0 });

    global.gc?.();
    const baseline = process.memoryUsage().rss;
    let peak = baseline;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
    const { stream, expected } = bigCsv();
    const res = await fetch(`${t.url}/api/v1/lists/${list.id}/contacts`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'text/csv' },
      body: stream,
      duplex: 'half',
    } as RequestInit);
    const body = await res.json();
    clearInterval(sampler);

    expect(res.status).toBe(200);
    expect(body).toMatchObject({
      added: expected.added,
      updated: expected.updated,
      duplicates: expected.duplicates,
      invalidCount: expected.invalid.length,
    });
    expect(body.invalid.map((r: { row: number }) => r.row)).toEqual(expected.invalid);
    expect(body.invalid[0]).toEqual({ row: 997, email: 'broken-997', reason: 'email: not a valid email address' });
    const stored = await must(t, apiKey, 'GET', `/api/v1/lists/${list.id}`);
    expect(stored.contactCount).toBe(EXISTING + expected.added);
    const [counted] = await t.mp.ctx.db.query<{ n: number }>('SELECT count(*) AS n FROM contacts WHERE list_id = $1', [list.id]);
    expect(counted!.n).toBe(EXISTING + expected.added);
    // The first occurrence in the file wins over its repeat.
    const [repeated] = await t.mp.ctx.db.query<{ name: string }>('SELECT name FROM contacts WHERE list_id = $1 AND lower(email) = $2', [list.id, 'c1500@big.test']);
    expect(repeated!.name).toBe('Contact 1500');

    const growthMb = (peak - baseline) / MB;
    expect(growthMb, `RSS grew by ${growthMb.toFixed(0)} MB`).toBeLessThan(MAX_GROWTH_MB);
  });
});
