export interface ForecastView {
  finishAt: string | null;
  days?: { date: string; sends: number }[];
}

export declare function estimateFinish(input: {
  pending: number;
  perSecond: number | null;
  forecast: ForecastView | null;
  now: Date | number;
}): { at: Date; limitedBy: 'rate' | 'policy' } | null;

export declare const PAUSE_REASON_TEXT: Record<string, string>;
