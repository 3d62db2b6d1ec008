import type { AppContext } from '../../context.ts';
import { Metrics } from '../../metrics.ts';
import type { ZodApp } from '../app.ts';
import { textReply } from '../openapi.ts';
import { authenticate, requireAdmin } from '../auth.ts';

/**
 * GET /metrics in the Prometheus text format: this process's counters and the cluster's gauges. It describes every tenant's accounts and campaigns,
 * so it takes the admin key like the other system-wide readings (tenants are walls).
 */
export function metricsRoutes(app: ZodApp, ctx: AppContext): void {
  const metrics = new Metrics(ctx, { role: 'serve', cluster: true });
  app.addHook('onClose', async () => metrics.close());

  const description = 'Prometheus metrics of the whole system (text format); needs the admin key.';
  app.get('/metrics', { schema: { description, response: { 200: textReply('the Prometheus text exposition format 0.0.4', 'text/plain') } } }, async (req, reply) => {
    requireAdmin(await authenticate(ctx, req));
    return reply.type(metrics.contentType).send(await metrics.scrape());
  });
}
