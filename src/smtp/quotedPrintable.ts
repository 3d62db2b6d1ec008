/**
 * Quoted-printable body encoding (RFC 2045 §6.7). libqp (the test's reference decoder) walks every
 * byte in JavaScript, ~70 µs per 5 KB part, a third of the send budget; this works on strings with
 * regular expressions, so mostly-ASCII bodies cost a few µs.
 */
const MAX_LINE = 76;
// Printable ASCII except "=", plus tab and space; everything else is escaped.
const UNSAFE = /[^\t\x20-\x3c\x3e-\x7e]+/g;
const TRAILING_BLANK = /[\t ]$/;

function escapeRun(run: string): string {
  // encodeURIComponent percent-encodes exactly these characters as UTF-8 bytes; it throws only on
  // a lone surrogate, which Buffer encodes as U+FFFD.
  try {
    return encodeURIComponent(run).replaceAll('%', '=');
  } catch {
    let out = '';
    for (const byte of Buffer.from(run, 'utf8')) out += `=${byte < 16 ? '0' : ''}${byte.toString(16).toUpperCase()}`;
    return out;
  }
}

function wrapLine(line: string): string {
  let out = '';
  while (line.length > MAX_LINE) {
    // Break before column 76 (leaving room for the soft break "="), never inside an "=XX" escape.
    let cut = MAX_LINE - 1;
    if (line[cut - 1] === '=') cut -= 1;
    else if (line[cut - 2] === '=') cut -= 2;
    out += `${line.slice(0, cut)}=\r\n`;
    line = line.slice(cut);
  }
  return out + line;
}

export function encodeQuotedPrintable(text: string): string {
  return text
    .split(/\r?\n/)
    .map((raw) => {
      let line = raw.replace(UNSAFE, escapeRun);
      // Blanks at the end of a line are stripped in transit unless escaped.
      if (TRAILING_BLANK.test(line)) line = line.slice(0, -1) + (line.endsWith(' ') ? '=20' : '=09');
      return wrapLine(line);
    })
    .join('\r\n');
}
