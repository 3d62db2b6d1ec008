import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { RateMeter } from './lib/rate.js';
import { subscribeCampaign } from './live.js';

export const FINAL = new Set(['completed', 'stopped']);
/** States that change without anyone clicking: these campaigns are followed live. */
export const LIVE_STATES = new Set(['running', 'paused_limits']);

/**
 * Campaigns by id, fed from list reads, live events and action replies. An update may carry only
 * some fields (live events do), so each field keeps the time of the reading it came from, and a
 * reading that started before a field's last one does not overwrite it: a slow list read never rolls
 * a card back, and a full read is still taken for the fields a newer event did not carry. Also
 * measures each running campaign's rate from the readings.
 */
export function useCampaigns() {
  const [campaigns, setCampaigns] = useState(() => new Map());
  const known = useRef(new Map());
  const fieldTimes = useRef(new Map());
  const meters = useRef(new Map());

  const apply = useCallback((update, at = performance.now()) => {
    const times = fieldTimes.current.get(update.id) ?? {};
    fieldTimes.current.set(update.id, times);
    const fresh = {};
    for (const [field, value] of Object.entries(update)) {
      if (times[field] !== undefined && times[field] > at) continue;
      times[field] = at;
      fresh[field] = value;
    }
    const c = { ...known.current.get(update.id), ...fresh };
    known.current.set(update.id, c);
    let meter = meters.current.get(c.id);
    if (!meter) meters.current.set(c.id, (meter = new RateMeter()));
    if (c.status !== 'running') meter.reset();
    else if ('sent' in fresh || 'failed' in fresh) meter.add(at, c.sent + c.failed);
    setCampaigns(new Map(known.current));
  }, []);

  const rateOf = useCallback((id) => meters.current.get(id)?.perSecond() ?? null, []);
  return { campaigns, apply, rateOf };
}

/** Follows the given campaigns live (see live.js) while they are in the list. */
export function useLiveCampaigns(api, ids, apply) {
  const subscriptions = useRef(new Map());
  const key = [...ids].sort((a, b) => a - b).join(',');
  useEffect(() => {
    const wanted = new Set(ids);
    for (const [id, unsubscribe] of subscriptions.current) {
      if (!wanted.has(id)) {
        unsubscribe();
        subscriptions.current.delete(id);
      }
    }
    for (const id of wanted) {
      if (!subscriptions.current.has(id)) subscriptions.current.set(id, subscribeCampaign(api, id, apply));
    }
  }, [api, key, apply]);
  useEffect(
    () => () => {
      for (const unsubscribe of subscriptions.current.values()) unsubscribe();
      subscriptions.current.clear();
    },
    [],
  );
}

/** Runs `load` now and every `everyMs` while the component is shown; returns [value, error, reload]. */
export function usePolled(load, everyMs, deps) {
  const [value, setValue] = useState(undefined);
  const [error, setError] = useState(null);
  const reload = useCallback(async () => {
    try {
      setValue(await load());
      setError(null);
    } catch (err) {
      setError(err);
    }
  }, deps);
  useEffect(() => {
    void reload();
    if (!everyMs) return undefined;
    const timer = setInterval(() => void reload(), everyMs);
    return () => clearInterval(timer);
  }, [reload, everyMs]);
  return [value, error, reload];
}

/** Re-renders every `ms`, for countdowns and ETAs. */
export function useTick(ms) {
  const [, setNow] = useState(0);
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(timer);
  }, [ms]);
}

/** Forecasts are read again this often while a campaign is not final. */
const FORECAST_EVERY_MS = 15_000;

/** The server's forecast of a campaign (GET /campaigns/:id/forecast) while it is not final; null otherwise. */
export function useForecast(api, c) {
  const live = c !== undefined && !FINAL.has(c.status);
  const [forecast] = usePolled(() => (live ? api.get(`/campaigns/${c.id}/forecast`) : Promise.resolve(null)), live ? FORECAST_EVERY_MS : 0, [
    api,
    c?.id,
    live,
    c?.status,
  ]);
  return forecast ?? null;
}
