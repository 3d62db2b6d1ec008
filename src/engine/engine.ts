import type { AppContext } from '../context.ts';

export class Engine {
  constructor(private ctx: AppContext) {}
  async start(): Promise<void> {}
  async stop(): Promise<void> {}
}
