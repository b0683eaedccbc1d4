import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { parseHelperOutput } from '../src/sources/registry/credential-helper.ts';
import { helperServerAddress, loadCredentials, normalizeRegistry } from '../src/sources/registry/credentials.ts';
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
  test('reads auth, username/password and identitytoken entries, with URL keys and Hub aliases', async () => {
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
      expect(await store.get(alias)).toEqual({ username: 'hubuser', password: 'hubpass123' });
    }
    expect(await store.get('ghcr.io')).toEqual({ username: 'octo', password: 'ghp_token123' });
    expect(await store.get('registry.example.com:5000')).toEqual({ identityToken: 'refresh-abc-123' });
    expect(await store.get('quay.io')).toBeUndefined();
    expect(await store.get('unknown.example')).toBeUndefined();
  });

  test('falls back to ~/.docker/config.json without DOCKER_CONFIG', async () => {
    writeConfig({ auths: { 'ghcr.io': { auth: b64('me:homepass1') } } }, '.docker');
    const store = loadCredentials({ env: {}, homeDir: dir });
    expect(await store.get('ghcr.io')).toEqual({ username: 'me', password: 'homepass1' });
  });

  test('a password may contain colons', async () => {
    const cfg = writeConfig({ auths: { 'ghcr.io': { auth: b64('me:pa:ss:word') } } });
    expect(await loadCredentials({ env: { DOCKER_CONFIG: cfg }, homeDir: dir }).get('ghcr.io')).toEqual({ username: 'me', password: 'pa:ss:word' });
  });

  test('no config anywhere is fine', async () => {
    const store = loadCredentials({ env: { DOCKER_CONFIG: path.join(dir, 'missing') }, homeDir: dir });
    expect(await store.get('docker.io')).toBeUndefined();
    expect(store.helperProblem('docker.io')).toBeUndefined();
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

  test('server addresses as docker gives them to helpers: Docker Hub by its v1 URL, others by host[:port]', () => {
    expect(helperServerAddress('docker.io')).toBe('https://index.docker.io/v1/');
    expect(helperServerAddress('registry-1.docker.io')).toBe('https://index.docker.io/v1/');
    expect(helperServerAddress('GHCR.io')).toBe('ghcr.io');
    expect(helperServerAddress('127.0.0.1:5000')).toBe('127.0.0.1:5000');
  });
});

describe('REGISTRISH_AUTH', () => {
  test('adds registries and overrides the Docker config', async () => {
    const cfg = writeConfig({ auths: { 'ghcr.io': { auth: b64('old:oldpass1') }, 'quay.io': { auth: b64('q:quaypass1') } } });
    const store = loadCredentials({
      env: {
        DOCKER_CONFIG: cfg,
        REGISTRISH_AUTH: JSON.stringify({ 'ghcr.io': 'new:newtoken1', 'docker.io': 'hub:hubpat123', 'https://127.0.0.1:5000': 'local:localpw1' }),
      },
      homeDir: dir,
    });
    expect(await store.get('ghcr.io')).toEqual({ username: 'new', password: 'newtoken1' });
    expect(await store.get('quay.io')).toEqual({ username: 'q', password: 'quaypass1' });
    expect(await store.get('registry-1.docker.io')).toEqual({ username: 'hub', password: 'hubpat123' });
    expect(await store.get('127.0.0.1:5000')).toEqual({ username: 'local', password: 'localpw1' });
    expect(redact('newtoken1 hubpat123')).toBe('*** ***');
  });

  test('a credential from REGISTRISH_AUTH wins over a credential helper, which is then not run', async () => {
    const cfg = writeConfig({ credsStore: 'registrish-absent-helper' });
    const warnings: string[] = [];
    const store = loadCredentials({ env: { DOCKER_CONFIG: cfg, REGISTRISH_AUTH: '{"ghcr.io":"u:tok12345"}', PATH: dir }, homeDir: dir, warn: (m) => warnings.push(m) });
    expect(await store.get('ghcr.io')).toEqual({ username: 'u', password: 'tok12345' });
    expect(warnings).toEqual([]);
  });

  test('accepts docker-login-shaped entries', async () => {
    const store = loadCredentials({ env: { REGISTRISH_AUTH: JSON.stringify({ 'ghcr.io': { username: 'u', password: 'pw123456' } }) }, homeDir: dir });
    expect(await store.get('ghcr.io')).toEqual({ username: 'u', password: 'pw123456' });
  });

  test('an empty variable is ignored', async () => {
    expect(await loadCredentials({ env: { REGISTRISH_AUTH: '  ' }, homeDir: dir }).get('ghcr.io')).toBeUndefined();
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

describe('credential helper answers (the protocol; helpers run in test/credential-helpers.test.ts)', () => {
  test('user and Secret; the Secret is registered for redaction at once', () => {
    expect(parseHelperOutput('{"ServerURL":"ghcr.io","Username":"octo","Secret":"helper-Secret-5150"}')).toEqual({ kind: 'found', username: 'octo', secret: 'helper-Secret-5150' });
    expect(redact('x helper-Secret-5150 y')).toBe('x *** y');
  });

  test('the <token> user name is kept: the store reads the Secret as an identity token', () => {
    expect(parseHelperOutput('{"ServerURL":"r.example","Username":"<token>","Secret":"refresh-Tok-8086"}')).toEqual({ kind: 'found', username: '<token>', secret: 'refresh-Tok-8086' });
    expect(redact('refresh-Tok-8086')).toBe('***');
  });

  test.each([
    ['not JSON', 'Secret=garbage-Secret-1 oops', 'not JSON'],
    ['an array', '["garbage-Secret-2"]', 'not a JSON object'],
    ['no Secret', '{"Username":"u"}', 'no Secret'],
    ['an empty Secret', '{"Username":"u","Secret":""}', 'no Secret'],
    ['a Username that is not a string', '{"Username":7,"Secret":"garbage-Secret-3"}', 'Username that is not a string'],
  ])('%s → a failure whose reason quotes nothing', (_name, text, reason) => {
    const answer = parseHelperOutput(text);
    expect(answer.kind).toBe('failed');
    const said = answer.kind === 'failed' ? answer.reason : '';
    expect(said).toContain(reason);
    expect(said).not.toMatch(/garbage-Secret/);
  });
});
