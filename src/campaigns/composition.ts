import { randomBytes } from 'node:crypto';
import type { AppContext } from '../context.ts';
import { getCampaignContent, type ComposableCampaign } from '../db/campaigns.ts';
import { accountDkimKey, type AccountDkimColumns } from '../db/smtpAccounts.ts';
import { envelopeSender } from '../reports/verp.ts';
import { HOLD_TTL_MS } from '../sendingPolicy/policy.ts';
import type { DkimKey } from '../smtp/dkim.ts';
import { messageSkeleton, renderMessage, type MessageSkeleton } from '../smtp/mime.ts';
import { compileCampaign, type CompiledCampaign, type MergeVars } from './template.ts';
import { messageIdTag, unsubscribeToken } from './unsubscribe.ts';

/**
 * Message composition: a campaign's content, personalised for one recipient, as the raw MIME that
 * goes out through one account. One path for every message: the engine's (Composer), the preview
 * and the test send.
 */

/** A campaign ready to compose: MIME skeleton and compiled templates. */
export interface PreparedCampaign {
  skeleton: MessageSkeleton;
  templates: CompiledCampaign;
}

export function prepareCampaign(c: ComposableCampaign): PreparedCampaign {
  return { skeleton: messageSkeleton({ campaignId: c.id, fromName: c.fromName, replyTo: c.replyTo }), templates: compileCampaign(c) };
}

/** Who a message goes to, as the templates see them. */
export interface Recipient {
  email: string;
  name: string | null;
  attributes: Record<string, unknown> | null;
}

/** The account a message goes out through, as far as composing cares: its addresses and DKIM key. */
export interface Sender extends AccountDkimColumns {
  id: number;
  userId: number;
  email: string;
  /** Where bounces go: envelope senders are VERP addresses at this domain (null: the account's address). */
  bounceDomain: string | null;
}

type Secrets = Pick<AppContext, 'secrets' | 'config'>;

/** A recipient's merge values, with the unsubscribe link that is theirs for this campaign. */
export function recipientVars(ctx: Secrets, userId: number, campaignId: number, r: Recipient): MergeVars {
  const token = unsubscribeToken(ctx.secrets.secretKey, { userId, campaignId, email: r.email });
  return { name: r.name ?? '', email: r.email, attributes: r.attributes ?? {}, unsubscribeUrl: `${ctx.config.publicUrl}/u/${token}` };
}

/** Subject and bodies as one recipient would read them (the preview). */
export function previewMessage(ctx: Secrets, userId: number, campaign: ComposableCampaign, r: Recipient) {
  const { templates } = prepareCampaign(campaign);
  const vars = recipientVars(ctx, userId, campaign.id, r);
  return { subject: templates.subject(vars), html: templates.html?.(vars) ?? null, text: templates.text?.(vars) ?? null };
}

/** Host part of Message-IDs: the public URL's, so they point at whoever runs this MailPilot. */
export const messageIdDomain = (ctx: Pick<AppContext, 'config'>) => new URL(ctx.config.publicUrl).hostname || 'mailpilot.invalid';

/** One message's raw MIME, personalised, signed when the sender has a DKIM key. */
export function composeMessage(
  ctx: Secrets & Pick<AppContext, 'clock'>,
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
export const oneOffMessageId = (ctx: Pick<AppContext, 'config'>) => `<test.${randomBytes(9).toString('base64url')}@${messageIdDomain(ctx)}>`;

/** A queued message to compose: its row and its recipient. */
export interface QueuedMessage extends Recipient {
  id: number;
  campaignId: number;
}

/**
 * A prepared campaign no load has asked for in this long is dropped. Far longer than a claimed
 * message can wait for its send (its reservation ends within HOLD_TTL_MS, a minute, of the load
 * that came with it, and the worker returns it then), so no message outlives its campaign here.
 */
const UNUSED_FOR_MS = 60 * HOLD_TTL_MS;

/**
 * The engine's composer: turns claimed messages into raw MIME. Templates compile once per campaign
 * per process, DKIM keys are decrypted and parsed once per account (again when the account's key
 * changes). The Message-ID `<campaign.message.tag@domain>` is the same on every attempt.
 */
export class Composer {
  private prepared = new Map<number, { campaign: PreparedCampaign; loadedAt: number }>();
  private dkimKeys = new Map<number, { sealed: string; key: DkimKey }>();
  private sweptAt = 0;
  private readonly messageIdDomain: string;

  constructor(private ctx: AppContext) {
    this.messageIdDomain = messageIdDomain(ctx);
  }

  /**
   * Loads (once) what the given campaigns need, so compose() itself never waits. Drops the
   * campaigns no load has asked for in UNUSED_FOR_MS, so a long-running process does not keep every
   * campaign it ever sent (~38 KB each).
   */
  async load(campaignIds: Iterable<number>): Promise<void> {
    const now = this.ctx.clock.now().getTime();
    for (const id of campaignIds) {
      const held = this.prepared.get(id);
      if (held) {
        held.loadedAt = now;
        continue;
      }
      const c = await getCampaignContent(this.ctx.db, id);
      if (!c) throw new Error(`campaign ${id} vanished`);
      this.prepared.set(id, { campaign: prepareCampaign(c), loadedAt: now });
    }
    // Looked over once a minute, not on every load (a thousand accounts load many times a second).
    if (now - this.sweptAt < HOLD_TTL_MS) return;
    this.sweptAt = now;
    for (const [id, held] of this.prepared) if (now - held.loadedAt > UNUSED_FOR_MS) this.prepared.delete(id);
  }

  private dkimFor(account: Sender): DkimKey | undefined {
    if (account.dkimKeyEnc === null) return undefined;
    const cached = this.dkimKeys.get(account.id);
    if (cached?.sealed === account.dkimKeyEnc) return cached.key;
    const key = accountDkimKey(this.ctx.secrets.secretKey, account.id, account)!;
    this.dkimKeys.set(account.id, { sealed: account.dkimKeyEnc, key });
    return key;
  }

  compose(m: QueuedMessage, account: Sender): string {
    const { campaign } = this.prepared.get(m.campaignId)!;
    const tag = messageIdTag(this.ctx.secrets.secretKey, m.campaignId, m.id);
    const messageId = `<${m.campaignId}.${m.id}.${tag}@${this.messageIdDomain}>`;
    const sender = { userId: account.userId, email: account.email, dkim: this.dkimFor(account) };
    return composeMessage(this.ctx, campaign, m, sender, messageId);
  }

  /** The message's envelope sender (MAIL FROM): a VERP address when the account has a bounce domain. */
  envelopeSender(m: QueuedMessage, account: Sender): string {
    return envelopeSender(this.ctx.secrets.secretKey, account, { messageId: m.id, userId: account.userId });
  }
}
