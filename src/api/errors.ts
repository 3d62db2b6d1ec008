/** An error the API answers with `{error: {code, message}}` and the given HTTP status. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export const notFound = (what: string) => new ApiError(404, 'not_found', `${what} not found`);
export const conflict = (code: string, message: string) => new ApiError(409, code, message);
export const invalid = (field: string, message: string) => new ApiError(422, 'invalid_field', `${field}: ${message}`);
