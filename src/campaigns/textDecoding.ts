import { isAscii, isUtf8 } from 'node:buffer';
import { AppError } from '../errors.ts';

/**
 * Turns the bytes of an uploaded text file into UTF-8, whatever it was written in. A byte order
 * mark decides first (UTF-8, UTF-16LE, UTF-16BE: the WHATWG Encoding Standard lets it override a
 * declared charset); then the declared charset (any label TextDecoder knows: windows-1252,
 * iso-8859-1, iso-8859-15, utf-16, ...); without one, UTF-8, and a file whose bytes are not valid
 * UTF-8 but hold no valid UTF-8 character either is read as windows-1252 (what Excel on Windows
 * writes), with a warning. Nothing is ever replaced silently: bytes that fit no reading are a 400
 * naming the line.
 */

/** Where the text came from and how it was read, for the import's reply. */
export interface Decoding {
  /** The declared charset, or undefined. */
  charset: string | undefined;
  /** Filled when the reading had to be guessed. */
  warnings: string[];
}

const UTF8_BOM = Buffer.from([0xef, 0xbb, 0xbf]);
const UTF16LE_BOM = Buffer.from([0xff, 0xfe]);
const UTF16BE_BOM = Buffer.from([0xfe, 0xff]);
const UTF8_LABELS = new Set(['utf-8', 'utf8', 'unicode-1-1-utf-8']);
const NEWLINE = 0x0a;

/** A charset named in a Content-Type header, checked: 415 when no decoder knows it. */
export function checkedCharset(charset: string | undefined): string | undefined {
  if (charset === undefined) return undefined;
  const label = charset.trim().toLowerCase();
  try {
    new TextDecoder(label);
  } catch {
    throw new AppError(415, 'unsupported_charset', `charset "${charset.slice(0, 40)}" is not one MailPilot reads; send UTF-8, windows-1252, ISO-8859-1, ISO-8859-15 or UTF-16 with a byte order mark`);
  }
  return label;
}

const notReadable = (line: number, how: string) =>
  new AppError(400, 'invalid_encoding', `line ${line} of the file is not valid ${how}; save the file as UTF-8, or send it with its charset (Content-Type: text/csv; charset=windows-1252)`);

/** Bytes that begin an incomplete UTF-8 sequence at the end of `buf`: how many to carry to the next chunk. */
function incompleteTail(buf: Buffer): number {
  for (let back = 1; back <= Math.min(3, buf.length); back++) {
    const byte = buf[buf.length - back]!;
    if (byte < 0x80) return 0;
    if (byte >= 0xc0) {
      const length = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : 2;
      return length > back ? back : 0;
    }
  }
  return 0;
}

function countLines(buf: Buffer): number {
  let n = 0;
  for (let i = buf.indexOf(NEWLINE); i !== -1; i = buf.indexOf(NEWLINE, i + 1)) n++;
  return n;
}

/** The 1-based line of the first character a reading of `buf` in `encoding` must replace. */
function lineOfFirstInvalid(buf: Buffer, linesBefore: number, encoding = 'utf-8'): number {
  const text = new TextDecoder(encoding).decode(buf);
  const bad = text.indexOf('\uFFFD');
  return linesBefore + 1 + (text.slice(0, Math.max(bad, 0)).split('\n').length - 1);
}

/**
 * The UTF-8 bytes of `input` read as `decoding` says. The common case (UTF-8, or plain ASCII) passes
 * the chunks through unchanged after a native validity check.
 */
export async function* utf8Chunks(input: AsyncIterable<Buffer | string>, decoding: Decoding): AsyncGenerator<Buffer> {
  let decoder: TextDecoder | undefined;
  let sniffed = false;
  let head = Buffer.alloc(0);
  let carry = Buffer.alloc(0);
  let lines = 0;
  // Undeclared: a valid UTF-8 character seen means the file is UTF-8, so a later invalid byte is an error.
  let sawUtf8 = decoding.charset !== undefined;

  const start = (buf: Buffer): Buffer => {
    sniffed = true;
    if (buf.subarray(0, 3).equals(UTF8_BOM)) return buf.subarray(3);
    if (buf.subarray(0, 2).equals(UTF16LE_BOM)) decoder = new TextDecoder('utf-16le', { fatal: true });
    else if (buf.subarray(0, 2).equals(UTF16BE_BOM)) decoder = new TextDecoder('utf-16be', { fatal: true });
    else if (decoding.charset !== undefined && !UTF8_LABELS.has(decoding.charset)) decoder = new TextDecoder(decoding.charset, { fatal: true });
    return buf;
  };

  const decoded = (buf: Buffer, final: boolean): Buffer => {
    try {
      const text = decoder!.decode(buf, { stream: !final });
      const out = Buffer.from(text, 'utf8');
      lines += countLines(out);
      return out;
    } catch {
      throw notReadable(lineOfFirstInvalid(buf, lines, decoder!.encoding), decoder!.encoding);
    }
  };

  const utf8 = (buf: Buffer): Buffer => {
    if (isAscii(buf)) {
      lines += countLines(buf);
      return buf;
    }
    if (isUtf8(buf)) {
      sawUtf8 = true;
      lines += countLines(buf);
      return buf;
    }
    const utf8Reading = new TextDecoder('utf-8').decode(buf);
    if (sawUtf8 || /[^\u0000-\u007f\uFFFD]/.test(utf8Reading)) throw notReadable(lineOfFirstInvalid(buf, lines), 'UTF-8');
    decoder = new TextDecoder('windows-1252');
    decoding.warnings.push(
      `the file is not valid UTF-8 and declares no charset (from line ${lineOfFirstInvalid(buf, lines)}); it was read as windows-1252. Send Content-Type: text/csv; charset=... to choose`,
    );
    return decoded(buf, false);
  };

  for await (const chunk of input) {
    let buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    if (!sniffed) {
      // A byte order mark needs its first 3 bytes together.
      head = Buffer.concat([head, buf]);
      if (head.length < 3) continue;
      buf = start(head);
    }
    if (decoder) {
      // Bytes held back while the file still read as UTF-8, when it turned out not to be.
      if (carry.length) [buf, carry] = [Buffer.concat([carry, buf]), Buffer.alloc(0)];
      if (buf.length) yield decoded(buf, false);
      continue;
    }
    if (carry.length) buf = Buffer.concat([carry, buf]);
    const tail = incompleteTail(buf);
    carry = Buffer.from(buf.subarray(buf.length - tail));
    const out = utf8(buf.subarray(0, buf.length - tail));
    if (out.length) yield out;
  }
  if (!sniffed && head.length) {
    const buf = start(head);
    if (decoder) yield decoded(buf, true);
    else yield utf8(buf);
    return;
  }
  if (decoder) {
    const rest = decoded(carry, true);
    if (rest.length) yield rest;
  } else if (carry.length) {
    yield utf8(carry);
  }
}
