import { contact, contactIndex } from './content.ts';

/*
 * smtp-sink's dump format (man smtp-sink, "DUMP FILE FORMAT"): each transaction starts with its own
 * X-Client-Addr line, then one X-Rcpt-Args line per RCPT TO, a Received header, then the message
 * as received with CRs removed, then an empty line. Only the part up to the first empty line (the
 * end of the message's own header) is read; bodies are skipped with Buffer.indexOf.
 * Our bodies never start a line with "X-Client-Addr: ", so that line marks a transaction.
 */
const RECORD_START = Buffer.from('\nX-Client-Addr: ');
const HEADER_END = Buffer.from('\n\n');
const RCPT = 'X-Rcpt-Args: ';
const EXAMPLES = 5;

export interface DeliveryVerdict {
  /** Recipients expected: contacts 0 … expected-1 (content.ts), each exactly once. */
  expected: number;
  /** Transactions the sink received. */
  messages: number;
  /** Expected recipients that received nothing. */
  missing: number;
  /** Expected recipients that received more than once. */
  duplicated: number;
  /** Recipients outside the expected range, or not contacts at all. */
  unexpected: number;
  /** Messages without a Message-ID header, or with another number of recipients than one. */
  malformed: number;
  /** A few addresses of each kind, to start looking from. */
  examples: { missing: string[]; duplicated: string[]; unexpected: string[] };
  exactlyOnce: boolean;
}

/**
 * Counts deliveries per recipient from smtp-sink's dump stream, fed in chunks of any size. One byte
 * per expected recipient, not a map of addresses: a million recipients cost 1 MB and no garbage
 * collection while the benchmark measures latencies in the same process.
 */
export class DeliveryTally {
  /** Transactions whose header has been read. */
  messages = 0;
  private readonly received: Uint8Array;
  private unexpected = 0;
  private malformed = 0;
  private readonly unexpectedExamples: string[] = [];
  /** Unparsed bytes; the stream starts at a line start, as if after a newline. */
  private carry = Buffer.from('\n');

  constructor(readonly expected: number) {
    this.received = new Uint8Array(expected);
  }

  write(chunk: Buffer): void {
    const buf = Buffer.concat([this.carry, chunk]);
    let pos = 0;
    for (;;) {
      const start = buf.indexOf(RECORD_START, pos);
      if (start < 0) {
        // The marker may be cut at the chunk's end.
        this.carry = buf.subarray(Math.max(pos, buf.length - RECORD_START.length + 1));
        return;
      }
      const end = buf.indexOf(HEADER_END, start + 1);
      if (end < 0) {
        this.carry = buf.subarray(start);
        return;
      }
      this.record(buf.toString('latin1', start + 1, end));
      pos = end + 1;
    }
  }

  private record(header: string): void {
    this.messages++;
    let recipients = 0;
    let messageIds = 0;
    for (const line of header.split('\n')) {
      if (line.startsWith(RCPT)) {
        recipients++;
        this.count(/<([^>]*)>/.exec(line)?.[1] ?? line.slice(RCPT.length));
      } else if (line.slice(0, 11).toLowerCase() === 'message-id:') {
        messageIds++;
      }
    }
    if (recipients !== 1 || messageIds !== 1) this.malformed++;
  }

  private count(address: string): void {
    const i = contactIndex(address);
    if (i === undefined || i >= this.expected) {
      this.unexpected++;
      if (this.unexpectedExamples.length < EXAMPLES) this.unexpectedExamples.push(address);
    } else if (this.received[i]! < 255) {
      this.received[i]!++;
    }
  }

  verdict(): DeliveryVerdict {
    let missing = 0;
    let duplicated = 0;
    const examples = { missing: [] as string[], duplicated: [] as string[], unexpected: this.unexpectedExamples };
    for (let i = 0; i < this.expected; i++) {
      const n = this.received[i]!;
      if (n === 0 && missing++ < EXAMPLES) examples.missing.push(contact(i).email);
      if (n > 1 && duplicated++ < EXAMPLES) examples.duplicated.push(contact(i).email);
    }
    const { unexpected, malformed, messages, expected } = this;
    return {
      expected,
      messages,
      missing,
      duplicated,
      unexpected,
      malformed,
      examples,
      exactlyOnce: missing === 0 && duplicated === 0 && unexpected === 0 && malformed === 0 && messages === expected,
    };
  }
}
