import { describe, expect, it } from 'vitest';
import { estimateFinish } from '../src/web/lib/eta.js';
import { formatCountdown, formatDuration, formatRate, percentDone } from '../src/web/lib/format.js';
import { RateMeter } from '../src/web/lib/rate.js';
import { createSseParser } from '../src/web/lib/sse.js';
import { subscribeCampaign } from '../src/web/live.js';
import { describeProgress } from '../src/cli/client/watch.ts';

const at = (iso: string) => new Date(iso).getTime();

describe('ETA from the rate and the sending policy', () => {
  it('is pending / rate when the policy would let it finish sooner', () => {
    const eta = estimateFinish({ pending: 100, perSecond: 10, forecast: { finishAt: '2026-03-02T10:00:01Z' }, now: at('2026-03-02T10:00:00Z') });
    expect(eta).toEqual({ at: new Date('2026-03-02T10:00:10Z'), limitedBy: 'rate' });
  });

  it("is the server's forecast when the policy holds it back longer, or when no rate is measured yet", () => {
    const forecast = { finishAt: '2026-03-03T00:00:00Z' };
    expect(estimateFinish({ pending: 120, perSecond: 100, forecast, now: at('2026-03-02T10:30:00Z') })).toEqual({
      at: new Date('2026-03-03T00:00:00Z'),
      limitedBy: 'policy',
    });
    expect(estimateFinish({ pending: 120, perSecond: null, forecast, now: at('2026-03-02T10:30:00Z') })?.at).toEqual(new Date('2026-03-03T00:00:00Z'));
  });

  it('has no answer when the policy lets it never finish', () => {
    expect(estimateFinish({ pending: 5, perSecond: 1, forecast: { finishAt: null }, now: 0 })).toBeNull();
    expect(estimateFinish({ pending: 0, perSecond: null, forecast: null, now: 5 })).toEqual({ at: new Date(5), limitedBy: 'rate' });
  });
});

describe('rate of a running campaign', () => {
  it('is measured over the readings of the last 30 seconds, once they span a second', () => {
    const meter = new RateMeter();
    meter.add(0, 0);
    meter.add(500, 50);
    expect(meter.perSecond()).toBeNull();
    meter.add(2_000, 200);
    expect(meter.perSecond()).toBe(100);
    meter.add(40_000, 2_000);
    meter.add(42_000, 2_100);
    expect(meter.perSecond()).toBe(50);
    meter.add(43_000, 10);
    expect(meter.perSecond()).toBeNull();
  });
});

describe('numbers and durations', () => {
  it('reads like a clock and like a person', () => {
    expect(formatCountdown(3_599_000)).toBe('59:59');
    expect(formatCountdown(3_600_000)).toBe('1:00:00');
    expect(formatCountdown(65_500)).toBe('1:06');
    expect(formatCountdown(-5)).toBe('0:00');
    expect(formatDuration(400)).toBe('<1s');
    expect(formatDuration(192_000)).toBe('3m 12s');
    expect(formatDuration(7_500_000)).toBe('2h 05m');
    expect(formatDuration(3 * 86_400_000 + 4 * 3_600_000)).toBe('3d 4h');
    expect(formatRate(null)).toBe('–');
    expect(formatRate(4.25)).toBe('4.3/s');
    expect(formatRate(85.4)).toBe('85/s');
    expect(percentDone({ total: 200, pending: 50, status: 'running' })).toBe(75);
    expect(percentDone({ total: 0, pending: 0, status: 'completed' })).toBe(100);
  });
});

describe('Server-Sent Events parser', () => {
  it('assembles events from arbitrary chunks, CRLF or LF, skipping comments', () => {
    const events: { event: string; data: string }[] = [];
    const feed = createSseParser((e) => events.push(e));
    const stream = ': hello\r\nevent: progress\r\ndata: {"id":1,\r\n\r\nevent: status\ndata: {"a":\ndata: 2}\n\ndata: plain\n\n';
    for (let i = 0; i < stream.length; i += 7) feed(stream.slice(i, i + 7));
    expect(events).toEqual([
      { event: 'progress', data: '{"id":1,' },
      { event: 'status', data: '{"a":\n2}' },
      { event: 'message', data: 'plain' },
    ]);
  });
});

describe('live campaign updates (src/web/live.js)', () => {
  const until = async (cond: () => boolean) => {
    for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 25));
    expect(cond()).toBe(true);
  };

  it('reads the stream: progress events as they come, and the whole campaign again on a status change', async () => {
    const reads: string[] = [];
    const seen: any[] = [];
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        const enc = new TextEncoder();
        controller.enqueue(enc.encode('event: progress\ndata: {"id":7,"sent":3}\n\n: keep-alive\n\n'));
        controller.enqueue(enc.encode('event: status\ndata: {"id":7,"status":"paused_limits"}\n\n'));
      },
    });
    const api = {
      get: async (path: string) => (reads.push(path), { id: 7, name: 'Full', warnings: ['at a limit'] }),
      stream: async () => new Response(body, { headers: { 'content-type': 'text/event-stream' } }),
    };
    const stop = subscribeCampaign(api, 7, (c) => seen.push(c));
    await until(() => seen.length >= 4);
    stop();
    expect(seen).toContainEqual({ id: 7, sent: 3 });
    expect(seen).toContainEqual({ id: 7, status: 'paused_limits' });
    // Once on connect, once for the status change.
    expect(reads).toEqual(['/campaigns/7', '/campaigns/7']);
  });

  it('polls the campaign instead when the server has no event stream (404)', async () => {
    let reads = 0;
    let streams = 0;
    const api = {
      get: async () => ({ id: 9, sent: ++reads }),
      stream: async () => (streams++, new Response('{"error":{"code":"not_found","message":"no route"}}', { status: 404 })),
    };
    const seen: any[] = [];
    const stop = subscribeCampaign(api, 9, (c) => seen.push(c));
    await until(() => seen.length >= 2);
    stop();
    expect(streams).toBe(1);
    expect(seen.map((c) => c.sent)).toEqual([1, 2]);
  });
});

describe('the CLI progress line of a campaign that waits', () => {
  const base = { id: 1, name: 'c', status: 'paused_limits', total: 10, sent: 2, failed: 0, suppressed: 0, cancelled: 0, pending: 8, warnings: [] };
  const now = at('2026-03-02T10:00:00Z');

  it('counts down to resumeAt when a limit holds it back', () => {
    expect(describeProgress({ ...base, resumeAt: '2026-03-02T10:05:00Z', pauseReason: 'limits' }, null, null, now)).toBe(
      'paused at its accounts’ limits, resumes in 5:00',
    );
  });

  it('says it waits for an account when none will send by itself (resumeAt null)', () => {
    expect(describeProgress({ ...base, resumeAt: null, pauseReason: 'bounce_rate' }, null, null, now)).toBe(
      'waiting (paused for the bounce or complaint rate) until an SMTP account can send',
    );
  });
});
