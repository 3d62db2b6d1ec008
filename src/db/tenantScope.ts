import type { Database } from './database.ts';

/**
 * The database as one user sees it (the second wall, 004_tenant_wall.sql). Every query runs in a
 * transaction that first switches to the role mailpilot_tenant and sets app.user_id, so row-level
 * security confines it to that user's rows even if the query itself forgot its user_id filter.
 * Both settings are transaction-local: the pooled connection goes back as it came.
 *
 * `query` is one short transaction of its own, like a plain query on the pool; `transaction` puts
 * several queries in one (and pays the switch once). Nothing here holds a connection between calls,
 * so a long import or an open event stream costs no idle transaction.
 */
export function tenantScope(db: Database, userId: number): Database {
  if (!Number.isSafeInteger(userId) || userId <= 0) throw new Error(`tenantScope: not a user id: ${userId}`);
  // Sent with BEGIN, so it cannot take parameters: userId is a checked integer, nothing else goes in.
  const enter = `SELECT set_config('role', 'mailpilot_tenant', true), set_config('app.user_id', '${userId}', true)`;
  const transaction: Database['transaction'] = (fn) => db.transaction(fn, enter);
  return {
    kind: db.kind,
    transaction,
    query: <T>(sql: string, params?: unknown[]) => transaction((tx) => tx.query<T>(sql, params)),
    exec: (sql) => transaction((tx) => tx.exec(sql)),
    listen: (channel, handler) => db.listen(channel, handler),
    notify: (channel, payloads) => db.notify(channel, payloads),
    // The pool belongs to the process, not to one user's scope.
    close: async () => undefined,
  };
}
