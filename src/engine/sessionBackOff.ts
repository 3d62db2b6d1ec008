/**
 * Reconnecting after the server ends a session (421, a drop before the final dot, 452 4.5.3,
 * 432 4.3.2; smtp/classify.ts `session_ended`). One such end after a run of accepted messages is
 * the connection's event, not the account's: the account opens its next session after
 * RECONNECT_BASE_MS and carries on. The wait doubles only while ends come one after another with
 * no message accepted in between; after MAX_QUICK_ENDS of them the server is refusing the account
 * itself, and the worker hands over to the long cool-down (engine/accountHealth.ts, throttled).
 * Real time, like the account's pace: it paces the SMTP peer.
 */
// Short enough that a server ending one session in fifty costs the campaign next to nothing (bench/reconnects.ts).
export const RECONNECT_BASE_MS = 50;
export const MAX_QUICK_ENDS = 5;
/**
 * A message whose session ends this many times in one worker, each time after others went through,
 * is retried later like any 4xx (charged), so no message loops.
 */
export const MAX_ENDS_PER_MESSAGE = 3;

export class SessionBackOff {
  private quickEnds: number;

  /** `escalated`: the account comes out of a throttle with no send accepted since, so the next end counts as the last straw. */
  constructor(escalated: boolean) {
    this.quickEnds = escalated ? MAX_QUICK_ENDS - 1 : 0;
  }

  /** The server accepted a message: the next end is an isolated one again. */
  accepted(): void {
    this.quickEnds = 0;
  }

  /** True when the last end came after a message was accepted (the first of a run). */
  get isolated(): boolean {
    return this.quickEnds === 1;
  }

  /** A session ended: how long to wait before the next session opens, or 'escalate' when the server refuses the account. */
  ended(): number | 'escalate' {
    this.quickEnds++;
    if (this.quickEnds >= MAX_QUICK_ENDS) return 'escalate';
    return RECONNECT_BASE_MS * 2 ** (this.quickEnds - 1);
  }
}
