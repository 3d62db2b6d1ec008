import { randomBytes } from 'node:crypto';
import { compileCampaign, type CampaignContent, type CompiledCampaign, type MergeVars } from '../campaigns/template.ts';
import { messageIdTag, unsubscribeToken } from '../campaigns/unsubscribe.ts';
import type { AppContext } from '../context.ts';
import type { Campaign } from '../db/campaigns.ts';
import type { ClaimedMessage } from '../db/messages.ts';
import { accountDkimKey, type AccountDkimColumns } from '../db/smtpAccounts.ts';
import type { DkimKey } from '../smtp/dkim.ts';
import { messageSkeleton, renderMessage, type MessageSkeleton } from '../smtp/mime.ts';

/** A campaign ready to render: MIME skeleton and compiled templates. */
export interface PreparedCampaign {
  skeleton: MessageSkeleton;
  templates: CompiledCampaign;
}

export function prepareCampaign(c: Pick<Campaign, 'id' | 'fromName' | 'replyTo'> & CampaignContent): PreparedCampaign {
  return { skeleton: messageSkeleton({ campaignId: c.id, fromName: c.fromName, replyTo: c.replyTo }), templates: compileCampaign(c) };
}

/** Who a message goes to, as the templates see them. */
export interface Recipient {
  email: string;
  name: string | null;
  attributes: Record<string, unknown> | null;
}

/** The account a message goes out through, as far as rendering cares: its address and DKIM key. */
export interface Sender extends AccountDkimColumns {
  id: number;
  userId: number;
  email: string;
}

/** A recipient's merge values, with the unsubscribe link that is theirs for this campaign. */
export function recipientVars(ctx: AppContext, userId: number, campaignId: number, r: Recipient): MergeVars {
  const token = unsubscribeToken(ctx.secrets.secretKey, { userId, campaignId, email: r.email });
  return { name: r.name ?? '', email: r.email, attributes: r.attributes ?? {}, unsubscribeUrl: `${ctx.config.publicUrl}/u/${token}` };
}

/** Host part of Message-IDs: the public URL's, so they point at whoever runs this MailPilot. */
export const messageIdDomain = (ctx: AppContext) => new URL(ctx.config.publicUrl).hostname || 'mailpilot.invalid';

/** One message's raw MIME, personalised, signed when the sender has a DKIM key. */
export function renderFor(
  ctx: AppContext,
  campaign: PreparedCampaign,
  r: Recipient,
  sender: { userId: number; email: string; dkim: DkimKey | undefined },
  messageId: string,
): string {
  const vars = recipientVars(ctx, sender.userId, campaign.skeleton.campaignId, r);
  const { templates } = campaign;
  return renderMessage(
    campaign.skeleton,
    {
      from: sender.email,
      to: r.email,
      toName: r.name,
      subject: templates.subject(vars),
      html: templates.html?.(vars),
      text: templates.text?.(vars),
      messageId,
      unsubscribeUrl: vars.unsubscribeUrl,
      date: ctx.clock.now(),
    },
    sender.dkim,
  );
}

/** A Message-ID for a message that has no queue row (a test send). */
export const oneOffMessageId = (ctx: AppContext) => `<test.${randomBytes(9).toString('base64url')}@${messageIdDomain(ctx)}>`;

/**
 * Turns a claimed message into its raw MIME. Templates compile once per campaign per process, DKIM
 * keys are decrypted and parsed once per account (again when the account's key changes).
 */
export class Renderer {
  private prepared = new Map<number, PreparedCampaign & { messageIdTag: string }>();
  private dkimKeys = new Map<number, { sealed: string; key: DkimKey }>();
  private readonly messageIdDomain: string;

  constructor(private ctx: AppContext) {
    this.messageIdDomain = messageIdDomain(ctx);
  }

  private async prepare(campaignId: number): Promise<void> {
    if (this.prepared.has(campaignId)) return;
    const [c] = await this.ctx.db.query<Pick<Campaign, 'subject' | 'html' | 'text' | 'fromName' | 'replyTo'>>(
      'SELECT subject, html, text, from_name AS "fromName", reply_to AS "replyTo" FROM campaigns WHERE id = $1',
      [campaignId],
    );
    if (!c) throw new Error(`campaign ${campaignId} vanished`);
    const tag = messageIdTag(this.ctx.secrets.secretKey, campaignId);
    this.prepared.set(campaignId, { ...prepareCampaign({ id: campaignId, ...c }), messageIdTag: tag });
  }

  /** Loads (once) what the given campaigns need, so render() itself never waits. */
  async load(campaignIds: Iterable<number>): Promise<void> {
    for (const id of campaignIds) await this.prepare(id);
  }

  private dkimFor(account: Sender): DkimKey | undefined {
    if (account.dkimKeyEnc === null) return undefined;
    const cached = this.dkimKeys.get(account.id);
    if (cached?.sealed === account.dkimKeyEnc) return cached.key;
    const key = accountDkimKey(this.ctx.secrets.secretKey, account.id, account)!;
    this.dkimKeys.set(account.id, { sealed: account.dkimKeyEnc, key });
    return key;
  }

  render(m: ClaimedMessage, account: Sender): string {
    const campaign = this.prepared.get(m.campaignId)!;
    const messageId = `<${m.campaignId}.${m.id}.${campaign.messageIdTag}@${this.messageIdDomain}>`;
    const sender = { userId: account.userId, email: account.email, dkim: this.dkimFor(account) };
    return renderFor(this.ctx, campaign, m, sender, messageId);
  }
}
