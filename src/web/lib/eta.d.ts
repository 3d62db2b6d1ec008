export interface AccountQuota {
  active?: boolean;
  timezone?: string;
  health?: { state: string };
  usage: { sentThisHour: number; sentToday: number; hourlyLimit: number; dailyLimit: number };
}

export declare function estimateFinish(input: {
  pending: number;
  perSecond: number | null;
  accounts: AccountQuota[];
  now: Date | number;
}): { at: Date; limitedBy: 'rate' | 'quota' } | null;
