import type { AppContext } from '../../context.ts';
import type { ZodApp } from '../app.ts';

export function healthRoutes(app: ZodApp, _ctx: AppContext): void {
  app.get('/healthz', async () => ({ ok: true }));
}
