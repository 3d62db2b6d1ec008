import { Readable } from 'node:stream';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { exportSuppressions, importSuppressions, MAX_INVALID_LISTED } from '../../campaigns/suppressionFiles.ts';
import type { AppContext } from '../../context.ts';
import { SUPPRESSION_REASONS } from '../../states.ts';
import type { ZodApp } from '../app.ts';
import { requireUser } from '../auth.ts';
import { AppError } from '../../errors.ts';
import { textReply } from '../openapi.ts';
import { invalidRows } from '../schemas.ts';

const importQuery = z.object({ reason: z.enum(SUPPRESSION_REASONS).default('manual') }).strict();

const importReply = z.object({
  added: z.number().int(),
  existing: z.number().int().describe('rows whose address was already suppressed, including by an earlier row of the same file'),
  invalid: invalidRows(MAX_INVALID_LISTED),
  invalidCount: z.number().int(),
});

/** CSV export and import of a user's suppression list (the list itself: /api/v1/suppressions). */
export function suppressionFileRoutes(app: ZodApp, ctx: AppContext): void {
  // Both stream: their queries run one by one in the caller's scope, not in one request transaction.
  const exported = textReply('a header row (email, reason, created_at), then one row per suppressed address', 'text/csv');
  app.get('/api/v1/suppressions/export.csv', { schema: { response: { 200: exported } }, config: { dbScope: 'per-query' } }, async (req, reply) => {
    const userId = requireUser(req.caller);
    return reply
      .type('text/csv; charset=utf-8')
      .header('content-disposition', 'attachment; filename="suppressions.csv"')
      .send(exportSuppressions(req.db, userId));
  });

  // Scoped, so only this route takes CSV, as the raw request stream (see the contact import).
  app.register(async (plugin) => {
    const scoped = plugin.withTypeProvider<ZodTypeProvider>();
    scoped.addContentTypeParser('text/csv', (_req, payload, done) => done(null, payload));
    scoped.post('/api/v1/suppressions/import', { schema: { querystring: importQuery, response: { 200: importReply } }, config: { dbScope: 'per-query', upload: 'stream' } }, async (req) => {
      const userId = requireUser(req.caller);
      if (!(req.body instanceof Readable)) throw new AppError(415, 'unsupported_media_type', 'send the suppressions as text/csv');
      return importSuppressions(req.db, userId, req.body, req.query.reason, ctx.clock.now());
    });
  });
}
