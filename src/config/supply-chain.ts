import { createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { quote } from '../util/format.ts';
import { checkKeys, describeType, isPlainObject, type Report } from './keys.ts';
import type { VerifyPolicy } from './types.ts';

// The supply-chain fields of images.json, at the top level (for every entry) or on one entry:
//   "attachments": true                      mirror signatures, attestations, SBOMs and referrers
//   "verify": { "key": "cosign.pub" }        publish only images signed by this key (or keys)
//   "verify": { "key": […], "identity": "ghcr.io/org/app" }   …signed under this name
//   "verify": false                          (on an entry) no gate for this one

export const VERIFY_KEYS = ['key', 'identity'] as const;

/** Key types cosign signs with. */
const KEY_TYPES = new Set(['ec', 'rsa', 'ed25519']);

export function parseAttachments(value: unknown, at: string, report: Report): boolean | undefined {
  if (typeof value === 'boolean') return value;
  report(at, `expected true or false, got ${describeType(value)}`);
  return undefined;
}

/** A verify policy without the identity (that comes from the source unless given), `false`, or undefined after a reported problem. */
export type ParsedVerify = { keys: VerifyPolicy['keys']; identity?: string } | false;

export function parseVerify(value: unknown, at: string, baseDir: string, report: Report, allowFalse: boolean): ParsedVerify | undefined {
  if (value === false && allowFalse) return false;
  if (!isPlainObject(value)) {
    report(at, `expected an object like {"key": "cosign.pub"}${allowFalse ? ' or false' : ''}, got ${describeType(value)}`);
    return undefined;
  }
  checkKeys(value, VERIFY_KEYS, at, report, { keys: 'key', pub: 'key', publickey: 'key' });
  let ok = true;
  const files = typeof value.key === 'string' ? [value.key] : value.key;
  if (value.key === undefined) {
    report(at, 'missing "key": the cosign public key file to trust, e.g. "key": "cosign.pub"');
    ok = false;
  } else if (!Array.isArray(files) || files.length === 0 || files.some((f) => typeof f !== 'string' || f === '')) {
    report(`${at}.key`, `expected a file name or a non-empty list of file names, got ${describeType(value.key)}`);
    ok = false;
  }
  const keys: VerifyPolicy['keys'] = [];
  if (ok) {
    (files as string[]).forEach((file, j) => {
      const where = Array.isArray(value.key) ? `${at}.key[${j}]` : `${at}.key`;
      const key = loadPublicKey(path.resolve(baseDir, file), file, where, report);
      if (key) keys.push({ file, key });
      else ok = false;
    });
  }
  let identity: string | undefined;
  if (value.identity !== undefined) {
    if (typeof value.identity !== 'string' || value.identity === '') {
      report(`${at}.identity`, `expected the repository a signature names, e.g. "ghcr.io/org/app", got ${describeType(value.identity)}`);
      ok = false;
    } else identity = value.identity;
  }
  if (!ok) return undefined;
  return identity === undefined ? { keys } : { keys, identity };
}

function loadPublicKey(abs: string, shown: string, at: string, report: Report): KeyObject | undefined {
  let pem: string;
  try {
    pem = readFileSync(abs, 'utf8');
  } catch (err) {
    report(at, `cannot read ${quote(shown)} (${(err as NodeJS.ErrnoException).code ?? 'read error'}): give the public key cosign wrote (cosign.pub), relative to images.json`);
    return undefined;
  }
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/u.test(pem)) {
    // Never echo it: it is a secret.
    report(at, `${quote(shown)} holds a private key; give the public one (cosign public-key --key cosign.key > cosign.pub), and keep the private key out of the repository`);
    return undefined;
  }
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch {
    report(at, `${quote(shown)} is not a PEM public key (expected "-----BEGIN PUBLIC KEY-----", as cosign writes cosign.pub)`);
    return undefined;
  }
  if (!KEY_TYPES.has(key.asymmetricKeyType ?? '')) {
    report(at, `${quote(shown)} is a ${key.asymmetricKeyType} key; cosign signs with ECDSA, RSA or Ed25519 keys`);
    return undefined;
  }
  return key;
}
