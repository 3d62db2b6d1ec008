import libqp from 'libqp';
import { describe, expect, it } from 'vitest';
import { encodeQuotedPrintable } from '../src/smtp/quotedPrintable.ts';

const decode = (qp: string) => libqp.decode(qp).toString('utf8');

describe('quoted-printable bodies', () => {
  it('round-trips text with non-ASCII, "=", tabs, trailing blanks and long lines, in lines of at most 76', () => {
    const samples = [
      '<a href="https://example.test/?a=1&b=2">Héllo wörld 😀</a>',
      'trailing space \nand tab\t\nthree=\r\nfour',
      'x'.repeat(500),
      '='.repeat(200),
      'é'.repeat(120),
    ];
    for (let i = 0; i < 300; i++) {
      let s = '';
      for (let j = 0; j < (i * 7) % 400; j++) s += String.fromCodePoint([32 + ((i * j) % 95), 0xe9, 0x1f600, 61, 9, 32, 10][(i + j) % 7]!);
      samples.push(s);
    }
    for (const text of samples) {
      const encoded = encodeQuotedPrintable(text);
      expect(decode(encoded)).toBe(text.replace(/\r?\n/g, '\r\n'));
      for (const line of encoded.split('\r\n')) {
        expect(line.length).toBeLessThanOrEqual(76);
        expect(line).toMatch(/^[\x21-\x7e\t ]*$/);
        expect(line).not.toMatch(/[\t ]$/);
      }
    }
  });
});
