import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { createHash } from 'node:crypto';
import { MAX_TOKEN_CHARS, readUnsubscribeToken } from '../../campaigns/unsubscribe.ts';
import type { AppContext } from '../../context.ts';
import { tenantScope } from '../../db/tenantScope.ts';
import { recordUnsubscribe } from '../../db/unsubscribes.ts';
import type { ZodApp } from '../app.ts';
import { AppError } from '../../errors.ts';
import { textReply } from '../openapi.ts';

const tokenParams = z.object({ token: z.string().max(MAX_TOKEN_CHARS) }).strict();
const MAX_POST_BODY_BYTES = 4096;

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const STYLE = 'body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}button{font-size:1rem;padding:.5rem 1rem}';

/**
 * The pages run no script, load nothing, may not be framed (a page that unsubscribes on a click is
 * a clickjacking target) and send no Referer (the URL carries the recipient's token).
 */
const PAGE_HEADERS = {
  'content-security-policy': `default-src 'none'; style-src 'sha256-${createHash('sha256').update(STYLE).digest('base64')}'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`,
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-store',
};

function page(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${title}</title><style>${STYLE}</style>
</head><body><h1>${title}</h1>${body}</body></html>`;
}

/**
 * RFC 8058 one-click unsubscribe. POST (from the mailbox provider or the page's button) needs no
 * cookie or key and never redirects; GET only shows the confirmation page, since link scanners
 * fetch every URL in a message.
 */
export function unsubscribeRoutes(app: ZodApp, ctx: AppContext): void {
  // Links in mail sent before a key rotation were signed with a previous key.
  const keys = [ctx.secrets.secretKey, ...ctx.secrets.previousKeys];
  const claimOf = (token: string) => keys.map((key) => readUnsubscribeToken(key, token)).find((c) => c !== undefined);

  app.register(async (plugin) => {
    const scoped = plugin.withTypeProvider<ZodTypeProvider>();
    scoped.addHook('onRequest', async (_req, reply) => {
      reply.headers(PAGE_HEADERS);
    });

    scoped.get('/u/:token', { schema: { params: tokenParams, response: { 200: textReply('the confirmation page, with its button', 'text/html'), 404: textReply('the link is not valid', 'text/html') } } }, async (req, reply) => {
      const claim = claimOf(req.params.token);
      // A person followed this link: they get a page, not a JSON error.
      if (!claim) return reply.status(404).type('text/html; charset=utf-8').send(page('Link not valid', '<p>This unsubscribe link is not valid.</p>'));
      return reply
        .type('text/html; charset=utf-8')
        .send(
          page(
            'Unsubscribe',
            `<p>Stop emails to <strong>${escapeHtml(claim.email)}</strong>?</p><form method="post"><button type="submit">Unsubscribe</button></form>`,
          ),
        );
    });

    // Mailbox providers post `List-Unsubscribe=One-Click` as a form, the page's button an empty form:
    // whatever the body, the token alone decides, so bodies are accepted (up to a small size) and ignored.
    scoped.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: MAX_POST_BODY_BYTES }, (_req, _body, done) => done(null, undefined));
    scoped.post('/u/:token', { schema: { params: tokenParams, response: { 200: textReply('the page saying it is done', 'text/html') } } }, async (req, reply) => {
      const claim = claimOf(req.params.token);
      if (!claim) throw new AppError(404, 'invalid_token', 'this unsubscribe link is not valid');
      await recordUnsubscribe(tenantScope(ctx.db, claim.userId), claim, ctx.clock.now());
      return reply.type('text/html; charset=utf-8').send(page('Unsubscribed', `<p>${escapeHtml(claim.email)} will receive no more emails from this sender.</p>`));
    });
  });
}
