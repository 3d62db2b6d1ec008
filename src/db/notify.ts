/** Sends each payload of $2 (text[]) on channel $1; a function scan over an array keeps the order. */
export const NOTIFY_SQL = 'SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p';
