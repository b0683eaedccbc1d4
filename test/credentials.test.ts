import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { loadCredentials, normalizeRegistry } from '../src/sources/registry/credentials.ts';
import { RegistrishError } from '../src/util/errors.ts';
import { clearSecrets, redact } from '../src/util/redact.ts';

let dir: string;
const b64 = (s: string) => Buffer.from(s).toString('base64');

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'registrish-creds-'));
  clearSecrets();
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
  clearSecrets();
});

function writeConfig(doc: unknown, sub = 'docker'): string {
  const d = path.join(dir, sub);
  fs.mkdirSync(d, { recursive: true });
  fs.writeFileSync(path.join(d, 'config.json'), typeof doc === 'string' ? doc : JSON.stringify(doc));
  return d;
}

/** The error a function throws (fails the test if it does not). */
function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected an error');
}

describe('normalizeRegistry', () => {
  test.each([
    ['docker.io', 'docker.io'],
    ['index.docker.io', 'docker.io'],
    ['registry-1.docker.io', 'docker.io'],
    ['https://index.docker.io/v1/', 'docker.io'],
    ['https://ghcr.io', 'ghcr.io'],
    ['GHCR.IO/', 'ghcr.io'],
    ['http://127.0.0.1:5000/v2/', '127.0.0.1:5000'],
    ['quay.io', 'quay.io'],
  ])('%s → %s', (input, expected) => expect(normalizeRegistry(input)).toBe(expected));
});

describe('Docker config', () => {
  test('reads auth, username/password and identitytoken entries, with URL keys and Hub aliases', () => {
    const cfg = writeConfig({
      auths: {
        'https://index.docker.io/v1/': { auth: b64('hubuser:hubpass123') },
        'https://ghcr.io': { username: 'octo', password: 'ghp_token123' },
        'registry.example.com:5000': { identitytoken: 'refresh-abc-123' },
        'quay.io': {},
      },
    });
    const store = loadCredentials({ env: { DOCKER_CONFIG: cfg }, homeDir: dir });
    for (const alias of ['docker.io', 'index.docker.io', 'registry-1.docker.io', 'https://index.docker.io/v1/']) {
      expect(store.get(alias)).toEqual({ username: 'hubuser', password: 'hubpass123' });
    }
    expect(store.get('ghcr.io')).toEqual({ username: 'octo', password: 'ghp_token123' });
    expect(store.get('registry.example.com:5000')).toEqual({ identityToken: 'refresh-abc-123' });
    expect(store.get('quay.io')).toBeUndefined();
    expect(store.get('unknown.example')).toBeUndefined();
  });

  test('falls back to ~/.docker/config.json without DOCKER_CONFIG', () => {
    writeConfig({ auths: { 'ghcr.io': { auth: b64('me:homepass1') } } }, '.docker');
    const store = loadCredentials({ env: {}, homeDir: dir });
    expect(store.get('ghcr.io')).toEqual({ username: 'me', password: 'homepass1' });
  });

  test('a password may contain colons', () => {
    const cfg = writeConfig({ auths: { 'ghcr.io': { auth: b64('me:pa:ss:word') } } });
    expect(loadCredentials({ env: { DOCKER_CONFIG: cfg }, homeDir: dir }).get('ghcr.io')).toEqual({ username: 'me', password: 'pa:ss:word' });
  });

  test('no config anywhere is fine', () => {
    const store = loadCredentials({ env: { DOCKER_CONFIG: path.join(dir, 'missing') }, homeDir: dir });
    expect(store.get('docker.io')).toBeUndefined();
    expect(store.unsupportedHelperFor('docker.io')).toBeUndefined();
  });

  test('registers every secret for redaction', () => {
    const cfg = writeConfig({
      auths: {
        'docker.io': { auth: b64('hubuser:hubpass123') },
        'ghcr.io': { username: 'octo', password: 'ghp_token123' },
        'r.example': { identitytoken: 'refresh-abc-123' },
      },
    });
    loadCredentials({ env: { DOCKER_CONFIG: cfg }, homeDir: dir });
    const text = `hubpass123 ${b64('hubuser:hubpass123')} ghp_token123 ${b64('octo:ghp_token123')} refresh-abc-123`;
    expect(redact(text)).toBe('*** *** *** *** ***');
    // Usernames are not secrets.
    expect(redact('hubuser octo')).toBe('hubuser octo');
  });

  test('malformed JSON names the file, not the content', () => {
    const cfg = writeConfig('{"auths": {"ghcr.io": {"auth": "c2VjcmV0LXZhbHVl"}},,}');
    const err = thrown(() => loadCredentials({ env: { DOCKER_CONFIG: cfg }, homeDir: dir }));
    expect(err).toBeInstanceOf(RegistrishError);
    expect(err.message).toContain(path.join(cfg, 'config.json'));
    expect(err.message).toContain('not valid JSON');
    expect(err.message).not.toContain('c2VjcmV0');
    expect(String(err.cause ?? '')).not.toContain('c2VjcmV0');
  });

  test('an auth value that is not user:pass is an error without the value', () => {
    const cfg = writeConfig({ auths: { 'ghcr.io': { auth: b64('no-colon-secret') } } });
    const err = thrown(() => loadCredentials({ env: { DOCKER_CONFIG: cfg }, homeDir: dir }));
    expect(err.message).toContain('"ghcr.io"');
    expect(err.message).not.toContain('no-colon-secret');
    expect(err.message).not.toContain(b64('no-colon-secret'));
  });

  test('credential helpers are reported as unsupported for registries we have nothing for', () => {
    const cfg = writeConfig({
      auths: { 'docker.io': {}, 'ghcr.io': { auth: b64('me:inline-pass') } },
      credsStore: 'desktop',
      credHelpers: { 'gcr.io': 'gcloud', 'https://index.docker.io/v1/': 'osxkeychain' },
    });
    const store = loadCredentials({ env: { DOCKER_CONFIG: cfg }, homeDir: dir });
    expect(store.unsupportedHelperFor('gcr.io')).toBe('gcloud');
    expect(store.unsupportedHelperFor('index.docker.io')).toBe('osxkeychain');
    expect(store.unsupportedHelperFor('quay.io')).toBe('desktop');
    expect(store.unsupportedHelperFor('ghcr.io')).toBeUndefined(); // we have an inline credential
  });
});

describe('REGISTRISH_AUTH', () => {
  test('adds registries and overrides the Docker config', () => {
    const cfg = writeConfig({ auths: { 'ghcr.io': { auth: b64('old:oldpass1') }, 'quay.io': { auth: b64('q:quaypass1') } } });
    const store = loadCredentials({
      env: {
        DOCKER_CONFIG: cfg,
        REGISTRISH_AUTH: JSON.stringify({ 'ghcr.io': 'new:newtoken1', 'docker.io': 'hub:hubpat123', 'https://127.0.0.1:5000': 'local:localpw1' }),
      },
      homeDir: dir,
    });
    expect(store.get('ghcr.io')).toEqual({ username: 'new', password: 'newtoken1' });
    expect(store.get('quay.io')).toEqual({ username: 'q', password: 'quaypass1' });
    expect(store.get('registry-1.docker.io')).toEqual({ username: 'hub', password: 'hubpat123' });
    expect(store.get('127.0.0.1:5000')).toEqual({ username: 'local', password: 'localpw1' });
    expect(redact('newtoken1 hubpat123')).toBe('*** ***');
  });

  test('a credential from REGISTRISH_AUTH silences the helper warning', () => {
    const cfg = writeConfig({ credsStore: 'desktop' });
    const store = loadCredentials({ env: { DOCKER_CONFIG: cfg, REGISTRISH_AUTH: '{"ghcr.io":"u:tok12345"}' }, homeDir: dir });
    expect(store.unsupportedHelperFor('ghcr.io')).toBeUndefined();
    expect(store.unsupportedHelperFor('docker.io')).toBe('desktop');
  });

  test('accepts docker-login-shaped entries', () => {
    const store = loadCredentials({ env: { REGISTRISH_AUTH: JSON.stringify({ 'ghcr.io': { username: 'u', password: 'pw123456' } }) }, homeDir: dir });
    expect(store.get('ghcr.io')).toEqual({ username: 'u', password: 'pw123456' });
  });

  test('an empty variable is ignored', () => {
    expect(loadCredentials({ env: { REGISTRISH_AUTH: '  ' }, homeDir: dir }).get('ghcr.io')).toBeUndefined();
  });

  test.each([
    ['not JSON', '{"ghcr.io": "user:sup3rsecret"', 'not valid JSON'],
    ['not an object', '["user:sup3rsecret"]', 'must be a JSON object'],
    ['value without a colon', '{"ghcr.io": "sup3rsecret"}', 'not of the form'],
    ['key and value swapped', '{"user:sup3rsecret": "ghcr.io"}', 'not of the form'],
  ])('malformed (%s) → error naming the variable, never the value', (_name, value, problem) => {
    const err = thrown(() => loadCredentials({ env: { REGISTRISH_AUTH: value }, homeDir: dir }));
    expect(err).toBeInstanceOf(RegistrishError);
    expect(err.message).toContain('REGISTRISH_AUTH');
    expect(err.message).toContain(problem);
    expect(err.message).not.toContain('sup3rsecret');
    expect((err as RegistrishError).hint ?? '').not.toContain('sup3rsecret');
  });
});
