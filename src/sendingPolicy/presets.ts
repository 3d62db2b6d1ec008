import type { LimitWindowKind } from './limitWindows.ts';

/**
 * Provider presets (API.md `preset`): each provider's published figures with a safety margin, for an
 * account that sends through an ordinary mailbox of that provider. Figures and sources are in
 * SMTP-FACTS.md "Provider limits an account will meet"; every provider counts a rolling 24 hours.
 * A preset fills only the fields the request leaves out, so the user can lower (or raise) any of them.
 */

export const PRESET_NAMES = ['gmail', 'google_workspace', 'microsoft365', 'ses'] as const;
export type PresetName = (typeof PRESET_NAMES)[number];

export interface PresetFields {
  hourlyLimit: number;
  dailyLimit: number;
  limitWindow: LimitWindowKind;
  ratePerSecond: number;
  maxConnections: number;
}

/** What is kept below each published figure. */
export const SAFETY_MARGIN = 0.8;

const margin = (figure: number) => Math.floor(figure * SAFETY_MARGIN);

export const PRESETS: Record<PresetName, PresetFields> = {
  // Gmail (consumer): about 500 recipients a day over SMTP, rolling 24 h; no published pace
  // (Google Workspace Admin Help 166852, "Gmail sending limits"). One message a second, two sessions.
  gmail: { hourlyLimit: margin(100), dailyLimit: margin(500), limitWindow: 'rolling', ratePerSecond: 1, maxConnections: 2 },
  // Google Workspace: 2,000 messages a day per user, rolling 24 h (Admin Help 166852 and 3726730);
  // pace unpublished: a quarter of the day in any hour keeps bursts below the "peak" 450 4.2.1 replies.
  google_workspace: { hourlyLimit: margin(500), dailyLimit: margin(2_000), limitWindow: 'rolling', ratePerSecond: 1, maxConnections: 3 },
  // Microsoft 365: 10,000 recipients a day, 30 messages a minute, 3 concurrent connections per
  // mailbox (Exchange Online limits, "Sending limits"): 30/min is 1,800 an hour and 0.5 a second.
  microsoft365: { hourlyLimit: margin(1_800), dailyLimit: margin(10_000), limitWindow: 'rolling', ratePerSecond: 0.5 * SAFETY_MARGIN, maxConnections: 3 },
  // Amazon SES in the sandbox: 200 messages a day at 1 a second, rolling 24 h (SES quotas,
  // "SentLast24Hours"); raise the limits to the account's own quota once out of the sandbox.
  ses: { hourlyLimit: margin(200), dailyLimit: margin(200), limitWindow: 'rolling', ratePerSecond: SAFETY_MARGIN, maxConnections: 1 },
};

/** The preset's fields that the request left out (undefined), to add to it. */
export function presetFill(preset: PresetName | null | undefined, given: Partial<Record<keyof PresetFields, unknown>>): Partial<PresetFields> {
  if (!preset) return {};
  const filled: Partial<Record<keyof PresetFields, unknown>> = {};
  for (const [key, value] of Object.entries(PRESETS[preset]) as [keyof PresetFields, unknown][]) {
    if (given[key] === undefined) filled[key] = value;
  }
  return filled as Partial<PresetFields>;
}
