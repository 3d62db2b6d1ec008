import { compileCampaign, type CompiledCampaign } from '../campaigns/template.ts';
import { messageIdFor, unsubscribeToken } from '../campaigns/unsubscribe.ts';
import type { AppContext } from '../context.ts';
import type { Campaign } from '../db/campaigns.ts';
import type { ClaimedMessage } from '../db/messages.ts';
import { renderMessage, type MessageSkeleton } from '../smtp/mime.ts';

interface Prepared {
  skeleton: MessageSkeleton;
  templates: CompiledCampaign;
}

/** Turns a claimed message into its raw MIME. Templates compile once per campaign per process. */
export class Renderer {
  private prepared = new Map<number, Prepared>();
  private readonly messageIdDomain: string;

  constructor(private ctx: AppContext) {
    this.messageIdDomain = new URL(ctx.config.publicUrl).hostname || 'mailpilot.invalid';
  }

  private async prepare(campaignId: number): Promise<Prepared> {
    const cached = this.prepared.get(campaignId);
    if (cached) return cached;
    const [c] = await this.ctx.db.query<Pick<Campaign, 'subject' | 'html' | 'text' | 'fromName' | 'replyTo'>>(
      'SELECT subject, html, text, from_name AS "fromName", reply_to AS "replyTo" FROM campaigns WHERE id = $1',
      [campaignId],
    );
    if (!c) throw new Error(`campaign ${campaignId} vanished`);
    const prepared = { skeleton: { campaignId, fromName: c.fromName, replyTo: c.replyTo }, templates: compileCampaign(c) };
    this.prepared.set(campaignId, prepared);
    return prepared;
  }

  /** Loads (once) what the given campaigns need, so render() itself never waits. */
  async load(campaignIds: Iterable<number>): Promise<void> {
    for (const id of campaignIds) await this.prepare(id);
  }

  render(m: ClaimedMessage, userId: number, fromAddress: string): string {
    const { skeleton, templates } = this.prepared.get(m.campaignId)!;
    const { secretKey } = this.ctx.secrets;
    const unsubscribeUrl = `${this.ctx.config.publicUrl}/u/${unsubscribeToken(secretKey, { userId, campaignId: m.campaignId, email: m.email })}`;
    const vars = { name: m.name ?? '', email: m.email, attributes: m.attributes ?? {}, unsubscribeUrl };
    return renderMessage(skeleton, {
      from: fromAddress,
      to: m.email,
      toName: m.name,
      subject: templates.subject(vars),
      html: templates.html?.(vars),
      text: templates.text?.(vars),
      messageId: messageIdFor(secretKey, m.id, m.campaignId, this.messageIdDomain),
      unsubscribeUrl,
      date: this.ctx.clock.now(),
    });
  }
}
