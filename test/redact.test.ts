import { afterEach, describe, expect, test } from 'vitest';
import { addSecret, clearSecrets, redact, redactUrl } from '../src/util/redact.ts';

afterEach(() => clearSecrets());

describe('redact', () => {
  test('masks registered secrets wherever they appear', () => {
    addSecret('hunter2-password');
    addSecret(Buffer.from('alice:hunter2-password').toString('base64'));
    addSecret('eyJhbGciOiJSUzI1NiJ9.payload.sig');
    const text = `pw=hunter2-password basic ${Buffer.from('alice:hunter2-password').toString('base64')} bearer eyJhbGciOiJSUzI1NiJ9.payload.sig`;
    const out = redact(text);
    expect(out).not.toContain('hunter2');
    expect(out).not.toContain('YWxpY2U6');
    expect(out).not.toContain('eyJhbGci');
    expect(out).toBe('pw=*** basic *** bearer ***');
  });

  test('a secret that contains another is masked whole', () => {
    addSecret('abcd');
    addSecret('xxabcdxx');
    expect(redact('[xxabcdxx] [abcd]')).toBe('[***] [***]');
  });

  test('ignores empty and very short secrets', () => {
    addSecret('');
    addSecret('abc');
    addSecret(undefined);
    expect(redact('abc is fine')).toBe('abc is fine');
  });

  test('masks the URL-encoded form of a secret', () => {
    addSecret('p@ss/word+1');
    expect(redact('https://h/x?q=p%40ss%2Fword%2B1')).not.toContain('p%40ss');
  });

  test('strips userinfo from URLs in free text', () => {
    expect(redact('GET https://alice:s3cret@registry.example.com/v2/ failed')).toBe('GET https://registry.example.com/v2/ failed');
    expect(redact('http://token@127.0.0.1:5000/v2/')).toBe('http://127.0.0.1:5000/v2/');
    // An @ in the path or query is not userinfo.
    expect(redact('https://h.example/v2/a@b?x=y@z')).toBe('https://h.example/v2/a@b?x=y@z');
  });

  test('masks sensitive query parameters in free text', () => {
    const out = redact('redirect to https://bucket.s3.example/blob?X-Amz-Signature=abcdef&X-Amz-Date=2024&token=tkn1234 then');
    expect(out).toContain('X-Amz-Signature=***');
    expect(out).toContain('X-Amz-Date=2024');
    expect(out).toContain('token=***');
    expect(out).not.toContain('tkn1234');
    expect(out).not.toContain('abcdef');
  });

  test('clearSecrets forgets everything', () => {
    addSecret('topsecret');
    clearSecrets();
    expect(redact('topsecret')).toBe('topsecret');
  });
});

describe('redactUrl', () => {
  test('removes userinfo and masks sensitive params, keeps the rest', () => {
    expect(redactUrl('https://u:p4ssw0rd@r.example/v2/a/blobs/sha256:00?access_token=zzzz&n=1')).toBe(
      'https://r.example/v2/a/blobs/sha256:00?access_token=***&n=1',
    );
  });

  test('masks registered secrets in paths', () => {
    addSecret('pathsecret');
    expect(redactUrl(new URL('https://r.example/pathsecret/x'))).toBe('https://r.example/***/x');
  });

  test('falls back to text redaction for something that is not a URL', () => {
    addSecret('pathsecret');
    expect(redactUrl('not a url pathsecret')).toBe('not a url ***');
  });
});
