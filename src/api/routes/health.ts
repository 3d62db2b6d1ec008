import { z } from 'zod';
import type { AppContext } from '../../context.ts';
import { schemaState } from '../../db/migrate.ts';
import type { ZodApp } from '../app.ts';

/** How long /readyz waits for the database before it answers 503: a load balancer's probe must not hang. */
const READY_TIMEOUT_MS = 2_000;

const alive = z.object({ ok: z.literal(true) });
const notReady = z.object({ ok: z.literal(false), reason: z.string().describe('why, in words: the database did not answer in time, or lacks migrations') });

export function healthRoutes(app: ZodApp, _ctx: AppContext): void {
  app.get('/healthz', { schema: { description: 'Liveness: the process answers HTTP (no key, touches nothing).', response: { 200: alive } } }, async () => ({ ok: true as const }));
}

/**
 * GET /readyz (API.md "Health and operations"): 200 `{ok: true}` when the database
 * answers within READY_TIMEOUT_MS and its schema is this code's; 503 `{ok: false, reason}` otherwise.
 * It needs the process's own database (no tenant), so it is registered with the app's context.
 */
export function readinessRoutes(app: ZodApp, ctx: AppContext): void {
  const description = 'Readiness: 200 when the database answers and its migrations are current, 503 with the reason otherwise (no key).';
  // Probes come every few seconds: the log gets a line when readiness changes, not one per probe.
  let lastReason: string | undefined;
  app.get('/readyz', { schema: { description, response: { 200: alive, 503: notReady } } }, async (_req, reply) => {
    const reason = await notReadyBecause(ctx);
    if (reason !== lastReason) {
      if (reason === undefined) ctx.log.info('ready again');
      else ctx.log.warn({ reason }, 'not ready');
      lastReason = reason;
    }
    if (reason === undefined) return { ok: true as const };
    return reply.status(503).send({ ok: false as const, reason });
  });
}

async function notReadyBecause(ctx: AppContext): Promise<string | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), READY_TIMEOUT_MS)));
  try {
    const state = await Promise.race([schemaState(ctx.db), timedOut]);
    if (state === 'timeout') return `the database did not answer within ${READY_TIMEOUT_MS / 1000} s`;
    if (state.missing.length > 0) return `the database lacks migrations ${state.missing.join(', ')}: run mailpilot migrate`;
    return undefined;
  } catch {
    // The driver's message can carry the server's address or user name: the reply stays generic, the log has it.
    return 'the database did not answer';
  } finally {
    clearTimeout(timer);
  }
}
