import { createSseParser } from './lib/sse.js';

/**
 * Live updates of one campaign. It listens to GET /campaigns/:id/events (Server-Sent Events,
 * `status` and `progress` events whose data is the campaign's state and counters) and reconnects
 * when the stream ends. Events may carry only part of the campaign, so updates are merged into
 * what the page has (hooks.js), and a status change reads the whole campaign again (its warnings).
 *
 * Fallback, on purpose small: when that endpoint is missing (404 from a server without it) or
 * answers anything but an event stream, or when this page already holds MAX_STREAMS streams
 * (browsers allow about six connections per server, and the page needs some for its own calls),
 * the campaign is polled with GET /campaigns/:id every POLL_MS instead.
 */

const MAX_STREAMS = 4;
const POLL_MS = 2_000;
const RECONNECT_MS = 3_000;
let openStreams = 0;

/** Calls onCampaign(campaign or part of it, receivedAt) on every update until the returned function is called. */
export function subscribeCampaign(api, id, onCampaign) {
  let stopped = false;
  let controller;
  let timer;

  const readOnce = async () => {
    const at = performance.now();
    try {
      const campaign = await api.get(`/campaigns/${id}`);
      if (!stopped) onCampaign(campaign, at);
    } catch {
      // A failed read is retried by the next poll or reconnect.
    }
  };

  const poll = async () => {
    await readOnce();
    if (!stopped) timer = setTimeout(poll, POLL_MS);
  };

  const listen = async () => {
    if (openStreams >= MAX_STREAMS) return poll();
    openStreams++;
    controller = new AbortController();
    let streamed = false;
    try {
      const res = await api.stream(`/campaigns/${id}/events`, controller.signal);
      if (!res.ok || !(res.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
        res.body?.cancel();
        return void poll();
      }
      streamed = true;
      void readOnce();
      const feed = createSseParser(({ event, data }) => {
        if ((event !== 'status' && event !== 'progress') || stopped) return;
        onCampaign(JSON.parse(data), performance.now());
        if (event === 'status') void readOnce();
      });
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        feed(value);
      }
    } catch {
      // Aborted (unsubscribed) or the connection dropped: reconnect below unless stopped.
    } finally {
      openStreams--;
    }
    if (!stopped) timer = setTimeout(streamed ? listen : poll, RECONNECT_MS);
  };

  void listen();
  return () => {
    stopped = true;
    clearTimeout(timer);
    controller?.abort();
  };
}
