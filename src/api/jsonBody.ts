import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AppError } from '../errors.ts';

/** Request bodies above this size are refused with 413 (a CSV import is streamed, not buffered). */
export const BODY_LIMIT_BYTES = 10 * 1024 * 1024;
/** No request schema nests deeper than a few levels; anything far deeper is an attack on the parsers. */
export const MAX_JSON_DEPTH = 32;

/** The deepest nesting of arrays and objects in a JSON text, counted without parsing it. */
function jsonDepth(text: string): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) deepest = Math.max(deepest, ++depth);
    else if (c === 0x7d || c === 0x5d) depth--;
  }
  return deepest;
}

/**
 * The first string (value or field name) holding a NUL, as a field path. PostgreSQL cannot store
 * NUL in text or jsonb, and a NUL in a header value truncates it in some mail software.
 */
function findNul(value: unknown, path: string): string | undefined {
  if (typeof value === 'string') return value.includes('\0') ? path : undefined;
  if (typeof value !== 'object' || value === null) return undefined;
  for (const [key, child] of Object.entries(value)) {
    if (key.includes('\0')) return path;
    const found = findNul(child, path ? `${path}.${key}` : key);
    if (found !== undefined) return found;
  }
  return undefined;
}

/**
 * The application/json parser: Fastify's own (which refuses __proto__ and constructor.prototype),
 * behind a depth limit, and refusing NUL anywhere, with the field named. An empty body is no body:
 * POST /start and friends are often sent with a JSON content type and nothing else.
 */
export function parseJsonBody(app: FastifyInstance) {
  const parse = app.getDefaultJsonParser('error', 'error');
  return (req: FastifyRequest, body: string | Buffer, done: (err: Error | null, body?: unknown) => void) => {
    const text = body.toString();
    if (text === '') return done(null, undefined);
    if (jsonDepth(text) > MAX_JSON_DEPTH) {
      return done(new AppError(400, 'too_deeply_nested', `body: JSON nested deeper than ${MAX_JSON_DEPTH} levels`));
    }
    parse(req, text, (err, value) => {
      if (err) return done(new AppError(400, 'malformed_json', 'body: not valid JSON'));
      const nulAt = findNul(value, '');
      if (nulAt !== undefined) return done(new AppError(422, 'invalid_field', `${nulAt || 'body'}: must not contain NUL characters`));
      done(null, value);
    });
  };
}
