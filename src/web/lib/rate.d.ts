export declare class RateMeter {
  constructor(windowMs?: number);
  add(atMs: number, done: number): void;
  perSecond(): number | null;
  reset(): void;
}
