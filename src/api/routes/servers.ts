import type { AppContext } from '../../context.ts';
import type { ZodApp } from '../app.ts';

export function serverRoutes(_app: ZodApp, _ctx: AppContext): void {}
