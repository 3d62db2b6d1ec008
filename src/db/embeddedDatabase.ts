import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { lockDataDir } from './dataDirLock.ts';
import type { Database, QueryOptions, Transaction } from './database.ts';
import { NOTIFY_SQL } from './notify.ts';
import type { EmbeddedError, EmbeddedMessage, EmbeddedRequest, EmbeddedThreadData } from './embeddedThread.ts';

type Call = EmbeddedRequest extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;

/** A database error from the thread, with its PostgreSQL fields (`code` and the rest) as pg and PGlite give them. */
function toError(e: EmbeddedError): Error {
  return Object.assign(new Error(e.message), e.fields);
}

/** tsx's ESM API as its exports map gives it to `import` (require.resolve would give the CommonJS one). */
function tsxEsmApi(): string {
  const manifest = createRequire(import.meta.url).resolve('tsx/package.json');
  const { exports } = JSON.parse(readFileSync(manifest, 'utf8')) as { exports: Record<string, { import: { default: string } }> };
  return new URL(exports['./esm/api']!.import.default, pathToFileURL(manifest)).href;
}

/**
 * Starts the thread. Compiled (dist/), it runs embeddedThread.js; from the sources (tsx, vitest)
 * the thread loads tsx first, since a worker does not inherit the process's TypeScript loader.
 */
function startThread(data: EmbeddedThreadData): Worker {
  const url = new URL(import.meta.url.endsWith('.ts') ? './embeddedThread.ts' : './embeddedThread.js', import.meta.url);
  if (url.pathname.endsWith('.js')) return new Worker(url, { workerData: data });
  const boot = `import(${JSON.stringify(tsxEsmApi())}).then((m) => { m.register(); return import(${JSON.stringify(url.href)}); })`;
  return new Worker(boot, { eval: true, workerData: data });
}

/**
 * The embedded database (PGlite) in `dataDir`, or in memory without one, on a thread of its own
 * (embeddedThread.ts). One connection: statements run one at a time, a transaction holds it until
 * it ends. The data directory is locked against a second process for as long as it is open.
 */
export async function openEmbedded(dataDir: string | undefined): Promise<Database> {
  if (dataDir) mkdirSync(dataDir, { recursive: true });
  const unlock = dataDir ? lockDataDir(dataDir) : () => undefined;
  const thread = startThread({ dataDir });
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  const listeners = new Map<number, (payload: string) => void>();
  let nextId = 1;
  let stopped: Error | undefined;

  const opened = new Promise<void>((resolve, reject) => {
    thread.on('message', (m: EmbeddedMessage) => {
      if ('opened' in m) return resolve();
      if ('openFailed' in m) return reject(toError(m.openFailed));
      if ('listener' in m) return listeners.get(m.listener)?.(m.payload);
      const call = pending.get(m.id);
      pending.delete(m.id);
      // Only a request waiting for its answer keeps the process alive (as PGlite on this thread did not).
      if (pending.size === 0) thread.unref();
      if ('error' in m) call?.reject(toError(m.error));
      else call?.resolve(m.result);
    });
    const end = (err: Error) => {
      stopped = err;
      reject(err);
      for (const call of pending.values()) call.reject(err);
      pending.clear();
    };
    thread.on('error', (err) => end(new Error(`the embedded database stopped: ${err.message}`)));
    thread.on('exit', (code) => end(new Error(`the embedded database stopped (thread exit ${code})`)));
  });

  const call = <T>(request: Call): Promise<T> => {
    if (stopped) return Promise.reject(stopped);
    const id = nextId++;
    if (pending.size === 0) thread.ref();
    return new Promise<T>((resolve, reject) => {
      pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      thread.postMessage({ ...request, id });
    });
  };

  try {
    await opened;
  } catch (err) {
    await thread.terminate();
    unlock();
    throw err;
  }
  thread.unref();

  const inTransaction = (tx: number): Transaction => ({
    query: <T>(sql: string, params?: unknown[], opts?: QueryOptions) => call<T[]>({ op: 'query', tx, sql, params: params ?? [], prepared: opts?.prepared }),
    exec: (sql) => call<void>({ op: 'exec', tx, sql }),
    copyIn: (target, data) => call<void>({ op: 'copyIn', tx, target, data }),
    copyOut: (query) => call<string>({ op: 'copyOut', tx, query }),
  });

  return {
    kind: 'pglite',
    query: <T>(sql: string, params?: unknown[], opts?: QueryOptions) => call<T[]>({ op: 'query', tx: null, sql, params: params ?? [], prepared: opts?.prepared }),
    exec: (sql) => call<void>({ op: 'exec', tx: null, sql }),
    transaction: async (fn, opening) => {
      const tx = await call<number>({ op: 'begin', opening: opening ?? null });
      let result;
      try {
        result = await fn(inTransaction(tx));
      } catch (err) {
        await call({ op: 'end', tx, commit: false }).catch(() => undefined);
        throw err;
      }
      await call({ op: 'end', tx, commit: true });
      return result;
    },
    listen: async (channel, handler) => {
      const listener = await call<number>({ op: 'listen', channel });
      listeners.set(listener, handler);
      return async () => {
        listeners.delete(listener);
        if (!stopped) await call({ op: 'unlisten', listener });
      };
    },
    notify: async (channel, payloads) => {
      if (payloads.length > 0) await call({ op: 'query', tx: null, sql: NOTIFY_SQL, params: [channel, payloads] });
    },
    close: async () => {
      if (!stopped) await call({ op: 'close' });
      stopped ??= new Error('the embedded database stopped: it was closed');
      await thread.terminate();
      unlock();
    },
  };
}
