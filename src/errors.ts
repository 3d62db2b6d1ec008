/**
 * An error a user can act on: a code, a message that says what to fix, and the HTTP status the API
 * answers it with (`{error: {code, message}}`). Thrown by any layer (the campaign state machine, an
 * import, a route); only the API turns it into a reply.
 */
export class AppError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export const notFound = (what: string) => new AppError(404, 'not_found', `${what} not found`);
export const conflict = (code: string, message: string) => new AppError(409, code, message);
export const invalid = (field: string, message: string) => new AppError(422, 'invalid_field', `${field}: ${message}`);
