import fs from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildRegistry } from '../src/build.ts';
import { loadCredentials, type Credential } from '../src/sources/registry/credentials.ts';
import { formatError } from '../src/util/errors.ts';
import { snapshotTree, startFaultProxy, type FaultProxy } from './harness/fault-proxy.ts';
import { seedUpstream } from './harness/images.ts';
import { makeTempDir, removeDir, waitFor } from './harness/procs.ts';
import { startRegistry, type UpstreamRegistry, startAuthUpstreams, type AuthUpstreams } from './harness/upstream.ts';

// Docker credential helpers, with real ones: a bash script `docker-credential-registrish-test`
// written into a temp bin folder that only the build's `env` PATH names (not this process's),
// behaving as RSH_HELPER_MODE in that env says (which also shows the env reaches it). It logs
// every call. Builds run against a real htpasswd upstream and a real token upstream (its issuer
// behind the fault proxy), with a Docker config using `credsStore` or `credHelpers`.

const HELPER = 'registrish-test';
const BASIC = { user: 'alice', pass: 'helper-basic-Secret-7731' };
const TOKEN = { user: 'bob', pass: 'helper-token-Secret-2208' };
const WRONG = 'helper-wrong-Secret-4490';
const IDENTITY = 'helper-identity-Token-9123';
const GARBAGE = 'helper-garbage-Secret-6161';

const SCRIPT = `#!/bin/bash
# A Docker credential helper for the tests: logs the call, then does what RSH_HELPER_MODE says.
server="$(cat)"
echo "$$ $1 $server" >> "$RSH_HELPER_STATE/calls.log"
case "$RSH_HELPER_MODE" in
  answer)
    f="$RSH_HELPER_STATE/answers/$(printf %s "$server" | tr -c 'A-Za-z0-9.-' '_').json"
    if [ -f "$f" ]; then cat "$f"; else echo "credentials not found in native keychain"; exit 1; fi ;;
  notfound) echo "credentials not found in native keychain"; exit 1 ;;
  garbage) echo "Secret=$RSH_GARBAGE is not JSON" ;;
  fail) echo "pass store is uninitialized"; exit 3 ;;
  flood) head -c 100000 /dev/zero | tr '\\0' x ;;
  hang) echo $$ > "$RSH_HELPER_STATE/hang.pid"; sleep 600 & echo $! > "$RSH_HELPER_STATE/sleep.pid"; wait ;;
esac
`;

type Mode = 'answer' | 'notfound' | 'garbage' | 'fail' | 'flood' | 'hang';

let storage: string;
let sandbox: string;
let bin: string;
let state: string;
let up: UpstreamRegistry;
let basic: UpstreamRegistry;
let token: UpstreamRegistry;
let tokProxy: FaultProxy;
let auth: AuthUpstreams;
/** Every log line, message, hint, cause and summary of every build here, for the leak check at the end. */
const texts: string[] = [];
let run = 0;

beforeAll(async () => {
  storage = makeTempDir('rsh-helpers-up-');
  sandbox = makeTempDir('rsh-helpers-');
  bin = path.join(sandbox, 'bin');
  state = path.join(sandbox, 'state');
  await mkdir(bin);
  await writeFile(path.join(bin, `docker-credential-${HELPER}`), SCRIPT, { mode: 0o755 });
  up = await startRegistry({ storageDir: storage });
  await seedUpstream(up.url);
  auth = await startAuthUpstreams(storage, BASIC, TOKEN);
  ({ basic, token, tokProxy } = auth);
});

afterAll(async () => {
  await auth?.stop();
  await up?.stop();
  removeDir(storage);
  removeDir(sandbox);
});

beforeEach(() => {
  fs.rmSync(state, { recursive: true, force: true });
  fs.mkdirSync(path.join(state, 'answers'), { recursive: true });
  tokProxy.reset();
});

/** The helper's answer for one server address (as docker writes it on stdin). */
function answer(server: string, username: string, secret: string): void {
  const file = path.join(state, 'answers', `${server.replace(/[^A-Za-z0-9.-]/g, '_')}.json`);
  fs.writeFileSync(file, JSON.stringify({ ServerURL: server, Username: username, Secret: secret }));
}

/** Every call of the helper so far: `{ pid, verb, server }`. */
function calls(): Array<{ pid: number; verb: string; server: string }> {
  let text = '';
  try {
    text = fs.readFileSync(path.join(state, 'calls.log'), 'utf8');
  } catch {
    return [];
  }
  return text
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [pid, verb, server] = l.split(' ');
      return { pid: Number(pid), verb: verb!, server: server ?? '' };
    });
}

/** A Docker config folder holding `doc`. */
function dockerConfig(doc: unknown): string {
  const dir = path.join(sandbox, `docker-${++run}`);
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(doc));
  return dir;
}

/** The env a build (or store) gets: the helper's bin folder first on PATH, its mode, a short time limit. */
function helperEnv(config: string, mode: Mode, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}`,
    HOME: sandbox,
    DOCKER_CONFIG: config,
    RSH_HELPER_STATE: state,
    RSH_HELPER_MODE: mode,
    RSH_GARBAGE: GARBAGE,
    REGISTRISH_CREDENTIAL_HELPER_TIMEOUT: '0.5',
    ...extra,
  };
}

interface BuildResult {
  ok: boolean;
  error: string;
  warnings: string[];
  ms: number;
}

/** One real build of `sources` into a fresh output and cache. */
async function build(sources: string[], env: NodeJS.ProcessEnv): Promise<BuildResult> {
  const dir = path.join(sandbox, `build-${++run}`);
  await mkdir(dir);
  await writeFile(path.join(dir, 'images.json'), JSON.stringify({ images: sources }));
  const warnings: string[] = [];
  const started = Date.now();
  try {
    const summary = await buildRegistry({
      images: path.join(dir, 'images.json'),
      outputDir: path.join(sandbox, 'out', `site-${run}`),
      cacheDir: path.join(sandbox, 'out', `cache-${run}`),
      hosts: ['netlify'],
      imageConcurrency: 2,
      blobConcurrency: 2,
      linkMode: 'hardlink',
      logger: { info: (m) => texts.push(m), warn: (m) => (texts.push(m), warnings.push(m)) },
      env,
      http: { maxRetries: 1, retryBaseMs: 10, blobRetryDelayMs: 10 },
    });
    texts.push(summary.line);
    return { ok: true, error: '', warnings, ms: Date.now() - started };
  } catch (err) {
    const error = formatError(err);
    texts.push(error);
    if (process.env.SHOW_HELPER_MESSAGES) console.log(error);
    for (let e: unknown = err; e instanceof Error; e = e.cause) {
      texts.push(e.message, String(e.stack), String((e as { hint?: string }).hint ?? ''));
    }
    return { ok: false, error, warnings, ms: Date.now() - started };
  }
}

/** The process is gone (or a zombie nobody reaped yet: it runs nothing). */
function gone(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
  try {
    return /^\d+ \(.*\) Z/su.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return true;
  }
}

describe('builds with a credential helper', () => {
  it('credsStore, right secret: the htpasswd upstream builds; the helper runs once per registry, never for one that needs no login', async () => {
    answer(basic.host, BASIC.user, BASIC.pass);
    const r = await build(
      [`${basic.host}/docker/single:v1`, `${basic.host}/oci/single:1.0`, `${up.host}/oci/multi:1.0`],
      helperEnv(dockerConfig({ auths: {}, credsStore: HELPER }), 'answer'),
    );
    expect(r.error).toBe('');
    expect(r.ok).toBe(true);
    expect(r.warnings).toEqual([]);
    // Two images of the basic upstream, one helper call; none for the anonymous upstream.
    expect(calls().map((c) => `${c.verb} ${c.server}`)).toEqual([`get ${basic.host}`]);
  });

  it('credHelpers, right secret: pulled through the token upstream (issuer behind the proxy)', async () => {
    answer(tokProxy.host, TOKEN.user, TOKEN.pass);
    const r = await build([`${tokProxy.host}/docker/single:v1`, `${tokProxy.host}/oci/multi:1.0`], helperEnv(dockerConfig({ credHelpers: { [tokProxy.host]: HELPER } }), 'answer'));
    expect(r.error).toBe('');
    expect(calls()).toHaveLength(1);
    expect(tokProxy.log.some((l) => l.startsWith('GET /token') && l.endsWith('→ 200'))).toBe(true);
  });

  it('credHelpers names the helper per registry, over credsStore', async () => {
    answer(basic.host, BASIC.user, BASIC.pass);
    const config = dockerConfig({ credsStore: 'registrish-absent-default', credHelpers: { [`http://${basic.host}`]: HELPER } });
    const r = await build([`${basic.host}/docker/single:v1`], helperEnv(config, 'answer'));
    expect(r.error).toBe('');
    expect(r.warnings).toEqual([]);
    expect(calls()).toHaveLength(1);
  });

  it('wrong secret: the build fails naming the registry and the refusal (401)', async () => {
    answer(basic.host, BASIC.user, WRONG);
    const r = await build([`${basic.host}/docker/single:v1`], helperEnv(dockerConfig({ credsStore: HELPER }), 'answer'));
    expect(r.ok).toBe(false);
    expect(r.error).toContain(`${basic.host} refused the credentials we have for it`);
    expect(r.error).toContain('401');

    answer(tokProxy.host, TOKEN.user, WRONG);
    const t = await build([`${tokProxy.host}/docker/single:v1`], helperEnv(dockerConfig({ credsStore: HELPER }), 'answer'));
    expect(t.ok).toBe(false);
    expect(t.error).toMatch(new RegExp(`${tokProxy.host.replace(/\./g, '\\.')}: token request .* answered 401`));
    expect(t.error).toContain(`The credentials for ${tokProxy.host} were refused`);
  });

  it('helper missing: a warning names it and the registry, and the 401 error says which helper failed', async () => {
    const env = helperEnv(dockerConfig({ credsStore: 'registrish-absent' }), 'answer');
    const r = await build([`${basic.host}/docker/single:v1`], env);
    expect(r.ok).toBe(false);
    expect(r.warnings).toEqual([`the credential helper docker-credential-registrish-absent failed for ${basic.host}: not found on PATH; pulling from it anonymously`]);
    expect(r.error).toContain(`${basic.host} needs credentials and we have none (the credential helper docker-credential-registrish-absent failed for ${basic.host}: not found on PATH)`);
    expect(r.error).toContain('→ 401');

    // Through the token upstream the refusal comes from the token endpoint: it names the helper too.
    const t = await build([`${tokProxy.host}/docker/single:v1`], env);
    expect(t.ok).toBe(false);
    expect(t.warnings).toHaveLength(1);
    expect(t.error).toContain(`${tokProxy.host} wants credentials (the credential helper docker-credential-registrish-absent failed for ${tokProxy.host}: not found on PATH)`);
  });

  it('the helper is looked up on the PATH of the build env only', async () => {
    answer(basic.host, BASIC.user, BASIC.pass);
    const env = helperEnv(dockerConfig({ credsStore: HELPER }), 'answer', { PATH: '/usr/bin:/bin' });
    const r = await build([`${basic.host}/docker/single:v1`], env);
    expect(r.ok).toBe(false);
    expect(r.warnings.join('\n')).toContain(`docker-credential-${HELPER} failed for ${basic.host}: not found on PATH`);
  });

  it('helper hanging: a warning after the time limit, no hang, the helper and its child are gone', async () => {
    const r = await build([`${basic.host}/docker/single:v1`, `${basic.host}/oci/single:1.0`], helperEnv(dockerConfig({ credsStore: HELPER }), 'hang'));
    expect(r.ok).toBe(false);
    expect(r.ms).toBeLessThan(8_000);
    expect(r.warnings).toEqual([`the credential helper docker-credential-${HELPER} failed for ${basic.host}: no answer within 0.5 s, stopped; pulling from it anonymously`]);
    expect(r.error).toContain(`no answer within 0.5 s`);
    expect(calls()).toHaveLength(1); // two images waited on the same run
    const pids = ['hang.pid', 'sleep.pid'].map((f) => Number(fs.readFileSync(path.join(state, f), 'utf8')));
    for (const pid of pids) {
      expect(pid).toBeGreaterThan(1);
      await waitFor(() => gone(pid), { timeoutMs: 5_000, what: `process ${pid} to be gone` });
    }
  });

  it('helper printing garbage: a warning without the output; the 401 names the helper', async () => {
    const r = await build([`${basic.host}/docker/single:v1`], helperEnv(dockerConfig({ credsStore: HELPER }), 'garbage'));
    expect(r.ok).toBe(false);
    expect(r.warnings).toEqual([`the credential helper docker-credential-${HELPER} failed for ${basic.host}: its answer is not JSON; pulling from it anonymously`]);
    expect(r.error).toContain('its answer is not JSON');
    expect(r.error).not.toContain('garbage');
  });

  it('helper failing: its short message and exit status are quoted', async () => {
    const r = await build([`${basic.host}/docker/single:v1`], helperEnv(dockerConfig({ credsStore: HELPER }), 'fail'));
    expect(r.ok).toBe(false);
    expect(r.warnings).toEqual([`the credential helper docker-credential-${HELPER} failed for ${basic.host}: exit status 3: pass store is uninitialized; pulling from it anonymously`]);
  });

  it('"credentials not found": no credential and no warning; a registry that wants a login then refuses as without one', async () => {
    const env = helperEnv(dockerConfig({ credsStore: HELPER }), 'notfound');
    const r = await build([`${basic.host}/docker/single:v1`], env);
    expect(r.ok).toBe(false);
    expect(r.warnings).toEqual([]);
    expect(r.error).toContain(`${basic.host} needs credentials and we have none (GET`);
    const t = await build([`${tokProxy.host}/docker/single:v1`], env);
    expect(t.ok).toBe(false);
    expect(t.warnings).toEqual([]);
    expect(t.error).toContain(`${tokProxy.host} wants credentials: run docker login`);
    expect(calls().map((c) => c.server)).toEqual([basic.host, tokProxy.host]);
  });

  it('a <token> user name: the Secret is used as an identity token (OAuth2 refresh token grant)', async () => {
    // The test issuer knows no refresh tokens: the proxy plays an OAuth2 server that accepts this
    // one refresh token and exchanges it for the issuer's token of the real user.
    const grants: string[] = [];
    tokProxy.fault = async (c) => {
      if (!c.url.pathname.endsWith('/token')) return;
      const form = new URLSearchParams(c.body.toString('utf8'));
      grants.push(`${c.req.method} ${form.get('grant_type') ?? '-'} ${form.get('client_id') ?? '-'}`);
      if (c.req.method === 'POST' && form.get('grant_type') === 'refresh_token' && form.get('refresh_token') === IDENTITY) {
        const basicAuth = `Basic ${Buffer.from(`${TOKEN.user}:${TOKEN.pass}`).toString('base64')}`;
        c.send(await c.forward({ headers: { authorization: basicAuth } }));
      } else {
        c.send({ status: 401, headers: { 'content-type': 'application/json' }, body: Buffer.from('{"errors":[{"code":"UNAUTHORIZED","message":"bad grant"}]}') });
      }
      return true;
    };
    answer(tokProxy.host, '<token>', IDENTITY);
    const r = await build([`${tokProxy.host}/docker/single:v1`], helperEnv(dockerConfig({ credsStore: HELPER }), 'answer'));
    expect(r.error).toBe('');
    expect(grants.length).toBeGreaterThan(0);
    expect(new Set(grants)).toEqual(new Set(['POST refresh_token registrish']));
  });

  it('REGISTRISH_AUTH wins over the helper, which is not run', async () => {
    answer(basic.host, BASIC.user, WRONG);
    const env = helperEnv(dockerConfig({ credsStore: HELPER }), 'answer', { REGISTRISH_AUTH: JSON.stringify({ [basic.host]: `${BASIC.user}:${BASIC.pass}` }) });
    const r = await build([`${basic.host}/docker/single:v1`], env);
    expect(r.error).toBe('');
    expect(calls()).toEqual([]);
  });

  it('no secret in any log line, warning, error, hint, cause or output file of the builds above', async () => {
    expect(texts.length).toBeGreaterThan(20);
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    const tokens = token.issuedTokens!();
    expect(tokens.length).toBeGreaterThan(0);
    const secrets = [
      BASIC.pass,
      TOKEN.pass,
      WRONG,
      IDENTITY,
      GARBAGE,
      b64(`${BASIC.user}:${BASIC.pass}`),
      b64(`${BASIC.user}:${WRONG}`),
      b64(`${TOKEN.user}:${TOKEN.pass}`),
      b64(`${TOKEN.user}:${WRONG}`),
      ...tokens,
      ...tokens.map((t) => t.split('.')[2]!),
    ];
    const files = [...(await snapshotTree(path.join(sandbox, 'out'))).entries()].map(([f, b]) => `${f}\n${b.toString('latin1')}`);
    expect(files.length).toBeGreaterThan(0);
    for (const s of secrets) {
      for (const t of texts) expect(t.includes(s), `a secret in: ${t.slice(0, 300)}`).toBe(false);
      for (const f of files) expect(f.includes(s), `a secret in ${f.split('\n')[0]}`).toBe(false);
    }
  });
});

describe('the credential store with a real helper', () => {
  const store = (doc: unknown, mode: Mode, extra: Record<string, string> = {}) => {
    const warnings: string[] = [];
    const s = loadCredentials({ env: helperEnv(dockerConfig(doc), mode, extra), homeDir: sandbox, warn: (m) => warnings.push(m) });
    return { s, warnings };
  };

  it('asks for Docker Hub by https://index.docker.io/v1/, other registries by host[:port], with `get`', async () => {
    answer('https://index.docker.io/v1/', 'hubuser', 'hub-Secret-1234');
    answer('ghcr.io', 'octo', 'ghcr-Secret-1234');
    const { s } = store({ credsStore: HELPER }, 'answer');
    expect(await s.get('registry-1.docker.io')).toEqual({ username: 'hubuser', password: 'hub-Secret-1234' });
    expect(await s.get('GHCR.io')).toEqual({ username: 'octo', password: 'ghcr-Secret-1234' });
    expect(await s.get('quay.io')).toBeUndefined(); // not found
    expect(calls().map((c) => `${c.verb} ${c.server}`)).toEqual(['get https://index.docker.io/v1/', 'get ghcr.io', 'get quay.io']);
  });

  it('once per registry: concurrent and later callers share one run', async () => {
    answer('ghcr.io', 'octo', 'ghcr-Secret-1234');
    const { s } = store({ credHelpers: { 'ghcr.io': HELPER } }, 'answer');
    const got = await Promise.all([s.get('ghcr.io'), s.get('https://ghcr.io'), s.get('ghcr.io')]);
    expect(await s.get('ghcr.io')).toEqual(got[0]);
    expect(calls()).toHaveLength(1);
  });

  it('a <token> user name becomes an identity token', async () => {
    answer('r.example', '<token>', IDENTITY);
    const { s } = store({ credsStore: HELPER }, 'answer');
    expect(await s.get('r.example')).toEqual({ identityToken: IDENTITY } satisfies Credential);
  });

  it('as docker: a helper takes the registry over from auths; "not found" is no credential; a failure falls back to auths', async () => {
    const auths = { auths: { 'ghcr.io': { auth: Buffer.from('inline:inline-Secret-1').toString('base64') } }, credsStore: HELPER };
    answer('ghcr.io', 'octo', 'ghcr-Secret-1234');
    expect(await store(auths, 'answer').s.get('ghcr.io')).toEqual({ username: 'octo', password: 'ghcr-Secret-1234' });
    expect(await store(auths, 'notfound').s.get('ghcr.io')).toBeUndefined();
    const failed = store(auths, 'fail');
    expect(await failed.s.get('ghcr.io')).toEqual({ username: 'inline', password: 'inline-Secret-1' });
    expect(failed.warnings).toHaveLength(1);
    expect(failed.warnings[0]).toMatch(/docker-credential-registrish-test failed for ghcr\.io: exit status 3: pass store is uninitialized; using its auths entry in .*config\.json$/);
    expect(failed.s.helperProblem('ghcr.io')).toContain('exit status 3');
  });

  it('an answer over 64 KiB: the helper is stopped', async () => {
    const { s, warnings } = store({ credsStore: HELPER }, 'flood');
    expect(await s.get('ghcr.io')).toBeUndefined();
    expect(warnings).toEqual([`the credential helper docker-credential-${HELPER} failed for ghcr.io: printed more than 64 KiB, stopped; pulling from it anonymously`]);
  });

  it('a helper name that is a path is not run', async () => {
    const { s, warnings } = store({ credsStore: `../bin/${HELPER}` }, 'answer');
    expect(await s.get('ghcr.io')).toBeUndefined();
    expect(warnings[0]).toContain('not a valid helper name');
    expect(calls()).toEqual([]);
  });

  it('the time limit variable must be a number of seconds', () => {
    expect(() => store({ credsStore: HELPER }, 'answer', { REGISTRISH_CREDENTIAL_HELPER_TIMEOUT: 'soon' })).toThrow(/REGISTRISH_CREDENTIAL_HELPER_TIMEOUT must be a number of seconds/);
  });
});
