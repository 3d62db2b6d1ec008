import { generateKeyPairSync } from 'node:crypto';
import { dkimVerify } from 'mailauth';

export const DKIM_DOMAIN = 'news.sender.test';
export const DKIM_SELECTOR = 'mp2026';

/** An RSA key pair: the private key as PEM for the account, the public key as its DNS TXT record. */
export function dkimKeyPair(bits: number): { privateKey: string; txt: string } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: bits });
  return {
    privateKey: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    txt: `v=DKIM1; k=rsa; p=${publicKey.export({ type: 'spki', format: 'der' }).toString('base64')}`,
  };
}

/** Verifies a message's DKIM signature against `txt` published at the selector, as a receiver would. */
export async function verifyDkim(raw: string, txt: string): Promise<{ result: string; signedHeaders: string[] }> {
  const verified = await dkimVerify(raw, {
    resolver: async (name: string, type: string) => {
      if (name !== `${DKIM_SELECTOR}._domainkey.${DKIM_DOMAIN}` || type !== 'TXT') throw Object.assign(new Error('no such record'), { code: 'ENOTFOUND' });
      return [[txt]];
    },
  });
  const signature = /^DKIM-Signature:([\s\S]*?)\r\n(?![ \t])/m.exec(raw)?.[1] ?? '';
  const h = /\bh=([^;]+)/.exec(signature.replace(/\s+/g, ''))?.[1] ?? '';
  return { result: verified.results[0]?.status.result ?? 'none', signedHeaders: h.toLowerCase().split(':') };
}
