import { Readable } from 'node:stream';
import { csvLine } from '../../campaigns/csvWriter.ts';
import type { AppContext } from '../../context.ts';
import type { Queryable } from '../../db/database.ts';
import { getCampaign } from '../../db/campaigns.ts';
import { accountShares, outcomePage, type OutcomeRow } from '../../db/campaignReports.ts';
import type { ZodApp } from '../app.ts';
import { requireUser } from '../auth.ts';
import { notFound } from '../../errors.ts';
import { z } from 'zod';
import { textReply } from '../openapi.ts';
import { id, idParams, pageOf } from '../schemas.ts';

/** Rows read per query while streaming an export. */
const EXPORT_PAGE = 5000;
const CSV_COLUMNS = [
  'id',
  'email',
  'status',
  'attempts',
  'accountId',
  'accountEmail',
  'sentAt',
  'lastError',
  'bounceType',
  'bounceStatus',
  'bounceDiagnostic',
  'complainedAt',
  'repliedAt',
] as const;

const outcomeLine = (row: OutcomeRow) => csvLine(CSV_COLUMNS.map((c) => row[c]));

const accountShareReply = z.object({
  accountId: id,
  email: z.string().nullable().describe('null when the account was deleted since'),
  sent: z.number().int(),
  failed: z.number().int(),
});
const outcomesFile = textReply(`a header row (${CSV_COLUMNS.join(', ')}), then one row per recipient`, 'text/csv');

/** Reports on one campaign beyond its counters: which accounts sent it, and every recipient's outcome. */
export function campaignReportRoutes(app: ZodApp, _ctx: AppContext): void {
  const ownCampaign = async (db: Queryable, userId: number, id: number) => {
    const campaign = await getCampaign(db, userId, id);
    if (!campaign) throw notFound('campaign');
    return campaign;
  };

  app.get('/api/v1/campaigns/:id/accounts', { schema: { params: idParams, response: { 200: pageOf(accountShareReply) } } }, async (req) => {
    const userId = requireUser(req.caller);
    await ownCampaign(req.db, userId, req.params.id);
    return { items: await accountShares(req.db, userId, req.params.id), next: null };
  });

  // Streamed after the reply has begun, so each page is read in a short transaction of its own.
  app.get('/api/v1/campaigns/:id/messages.csv', { schema: { params: idParams, response: { 200: outcomesFile } }, config: { dbScope: 'per-query' } }, async (req, reply) => {
    const userId = requireUser(req.caller);
    const campaign = await ownCampaign(req.db, userId, req.params.id);
    async function* lines() {
      yield csvLine(CSV_COLUMNS);
      for (let after = 0; ; ) {
        const rows = await outcomePage(req.db, userId, campaign.id, after, EXPORT_PAGE);
        if (rows.length === 0) return;
        yield rows.map(outcomeLine).join('');
        after = rows.at(-1)!.id;
      }
    }
    return reply
      .type('text/csv; charset=utf-8')
      .header('content-disposition', `attachment; filename="campaign-${campaign.id}-outcomes.csv"`)
      .send(Readable.from(lines()));
  });
}
