export declare function formatNumber(n: number): string;
export declare function formatDuration(ms: number): string;
export declare function formatCountdown(ms: number): string;
export declare function formatRate(perSecond: number | null | undefined): string;
export declare function percentDone(c: { total: number; pending: number; status: string }): number;
