import { spawnSync } from 'node:child_process';
import { chmodSync, constants, existsSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { Socket } from 'node:net';
import { join } from 'node:path';
import { DeliveryTally, type DeliveryVerdict } from './deliveryTally.ts';
import { startSmtpSink, type SmtpSink } from './smtpSink.ts';

const DRAIN_TIMEOUT_MS = 60_000;

export interface RecordingSink extends SmtpSink {
  /** Waits until every message the sink accepted has been read from the dump, then judges delivery. */
  verdict(): Promise<DeliveryVerdict>;
}

/**
 * smtp-sink that checks exactly-once delivery of contacts 0 … expected-1 (content.ts) at a million
 * messages of ~5 KB without keeping them: `-D` appends every transaction to a named pipe, which a
 * DeliveryTally in this process reads as it arrives.
 *
 * Why a pipe and what the sink does with it (Postfix's smtp-sink.c): for each transaction it writes
 * a temporary file next to the -D path (created and unlinked at once), and when "." arrives it opens
 * the -D path, appends the whole transaction, closes it, and only then counts the message and
 * replies 250. So a message MailPilot recorded as sent is already in the pipe, transactions never
 * interleave, and once the tally has read as many messages as the -c counter shows, it has read all.
 * The pipe is opened read-write here so it never reports end-of-file between the sink's appends.
 * If this process stops reading, the sink blocks: the recording slows sending rather than losing.
 *
 * `maxConnections` is smtp-sink's -m: above it, connections wait unanswered in the kernel's queue.
 */
export async function startRecordingSink(opts: { expected: number; maxConnections: number }): Promise<RecordingSink> {
  // smtp-sink first writes each transaction to a temporary file beside the pipe: keep those in memory (tmpfs).
  const dir = mkdtempSync(join(existsSync('/dev/shm') ? '/dev/shm' : '/tmp', 'mailpilot-sink-'));
  // The sink runs as nobody.
  chmodSync(dir, 0o777);
  const fifo = join(dir, 'dump');
  const made = spawnSync('mkfifo', ['-m', '0666', fifo], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (made.status !== 0) throw new Error(`mkfifo ${fifo} failed`);

  const tally = new DeliveryTally(opts.expected);
  const reader = new Socket({ fd: openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK), readable: true, writable: false });
  reader.on('data', (chunk: Buffer) => tally.write(chunk));
  let readError: Error | undefined;
  reader.on('error', (err) => (readError = err));

  const cleanUp = () => {
    reader.destroy();
    rmSync(dir, { recursive: true, force: true });
  };
  let sink: SmtpSink;
  try {
    // The -D path is a strftime template: the temporary directory's name has no "%".
    sink = await startSmtpSink(join(dir, 'counters'), ['-m', String(opts.maxConnections), '-D', fifo]);
  } catch (err) {
    cleanUp();
    throw err;
  }

  return {
    port: sink.port,
    accepted: () => sink.accepted(),
    cpuSeconds: () => sink.cpuSeconds(),
    async verdict() {
      const deadline = Date.now() + DRAIN_TIMEOUT_MS;
      while (tally.messages < sink.accepted()) {
        if (readError) throw new Error(`reading the sink's dump failed: ${readError.message}`);
        if (Date.now() > deadline) throw new Error(`the sink accepted ${sink.accepted()} messages, only ${tally.messages} came through its dump`);
        await new Promise((r) => setTimeout(r, 50));
      }
      return tally.verdict();
    },
    async stop() {
      await sink.stop();
      cleanUp();
    },
  };
}
