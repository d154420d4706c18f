// TOTP (RFC 6238: HMAC-SHA1, 6 digits, 30 s) for the browser tests, with node:crypto: the journeys' staff enrol an
// authenticator through the security page and then sign in with codes computed here from its secret.

import { createHmac } from 'node:crypto';

const PERIOD = 30;

function base32(secret: string): Buffer {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const ch of secret.replace(/[=\s]/g, '').toUpperCase()) {
    const v = alphabet.indexOf(ch);
    if (v < 0) throw new Error(`not base32: ${ch}`);
    bits += v.toString(2).padStart(5, '0');
  }
  const bytes: number[] = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(bytes);
}

/** totpAt is the code of one time step (seconds since the epoch / 30). */
export function totpAt(secret: string, step: number, digits = 6): string {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac('sha1', base32(secret)).update(counter).digest();
  const off = mac[mac.length - 1] & 0x0f;
  const n = (mac.readUInt32BE(off) & 0x7fffffff) % 10 ** digits;
  return String(n).padStart(digits, '0');
}

export function currentStep(now = Date.now()): number {
  return Math.floor(now / 1000 / PERIOD);
}

/**
 * Authenticator hands out codes the server will take: it accepts the current step and one either side, and each
 * step once per account, so several sign-ins within 30 s use the next steps and wait only when two ahead.
 */
export class Authenticator {
  private last = -1;
  constructor(readonly secret: string) {}

  async code(): Promise<string> {
    let now = currentStep();
    const step = Math.max(now, this.last + 1);
    while (step > now + 1) {
      await new Promise((r) => setTimeout(r, 1000));
      now = currentStep();
    }
    this.last = step;
    return totpAt(this.secret, step);
  }

  /** wrongCode is six digits that are no code the server would accept now. */
  wrongCode(): string {
    const now = currentStep();
    const valid = new Set([-1, 0, 1, 2].map((d) => totpAt(this.secret, now + d)));
    for (let n = 0; ; n++) {
      const c = String(n).padStart(6, '0');
      if (!valid.has(c)) return c;
    }
  }
}
