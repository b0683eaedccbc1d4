// Self-test of the real-component harness: a real docker-registry (no auth, htpasswd, token)
// seeded with the fixtures, pulled by the real skopeo, podman, containerd (ctr) and dockerd.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ctrPull, dockerPull, podmanPull, skopeoCopy, skopeoInspectRaw, startContainerd, startDockerd, type Containerd, type Dockerd } from './harness/clients.ts';
import { fixtureData, makeTar, MT, seedUpstream, tagManifest, type Fixtures } from './harness/images.ts';
import { freePort, hasCommand, makeTempDir, removeDir, run, spawnDaemon, waitFor } from './harness/procs.ts';
import { fetchToken, fetchWithAuth, parseChallenge, startRegistry, type UpstreamRegistry } from './harness/upstream.ts';
import { sha256 } from '../src/model/digest.ts';

const HOOK = 120_000;
const T = 120_000;
const USER = 'puller';
const PASS = 's3cret-pass';
const ACCEPT = [MT.ociIndex, MT.ociManifest, MT.dockerList, MT.dockerManifest].join(', ');

let storage: string;
let plain: UpstreamRegistry;
let htp: UpstreamRegistry;
let tok: UpstreamRegistry;
let fx: Fixtures;
const timings: string[] = [];

const timed = async <R>(label: string, fn: () => Promise<R>): Promise<R> => {
  const t0 = Date.now();
  try {
    return await fn();
  } finally {
    timings.push(`${label}: ${Date.now() - t0} ms`);
  }
};

const plat = (ref: string, platform: string) => {
  const p = fx[ref].platforms.find((x) => x.platform === platform);
  if (!p) throw new Error(`${ref} has no ${platform}`);
  return p;
};

beforeAll(async () => {
  const missing = ['docker-registry', 'htpasswd', 'openssl', 'skopeo', 'podman', 'containerd', 'ctr', 'dockerd', 'docker', 'tar'].filter(
    (c) => !hasCommand(c) && !hasCommand(`/usr/sbin/${c}`),
  );
  if (missing.length) throw new Error(`missing ${missing.join(', ')}: run (as root) bash scripts/install-test-deps.sh`);
  if (process.getuid?.() !== 0) throw new Error('the real-client harness needs root (containerd, dockerd, podman storage)');
  storage = makeTempDir('rsh-st-');
  plain = await timed('registry start (no auth)', () => startRegistry({ storageDir: storage }));
  fx = await timed('seedUpstream', () => seedUpstream(plain.url));
  [htp, tok] = await timed('registry start (htpasswd + token)', () =>
    Promise.all([
      startRegistry({ storageDir: storage, auth: { kind: 'htpasswd', user: USER, pass: PASS } }),
      startRegistry({ storageDir: storage, auth: { kind: 'token', user: USER, pass: PASS } }),
    ]),
  );
}, HOOK);

afterAll(async () => {
  await Promise.all([plain?.stop(), htp?.stop(), tok?.stop()]);
  if (storage) removeDir(storage);
  console.log(`harness timings:\n  ${timings.join('\n  ')}`);
}, HOOK);

describe('procs', () => {
  it('freePort, waitFor timeout message, run errors carry stderr', async () => {
    const p = await freePort();
    expect(p).toBeGreaterThan(0);
    await expect(waitFor(() => false, { timeoutMs: 200, what: 'never-true thing' })).rejects.toThrow(/200 ms waiting for never-true thing/);
    await expect(run('sh', ['-c', 'echo boom >&2; exit 3'])).rejects.toThrow(/boom/);
    expect((await run('sh', ['-c', 'exit 4'], { allowFailure: true })).code).toBe(4);
  });

  it('spawnDaemon reports early exit with the log tail, and stop() kills by PID', async () => {
    const dir = makeTempDir();
    try {
      await expect(
        spawnDaemon('sh', ['-c', 'echo daemon-said-goodbye; exit 1'], { logFile: path.join(dir, 'a.log'), ready: async () => false }),
      ).rejects.toThrow(/daemon-said-goodbye/);
      const d = await spawnDaemon('sleep', ['300'], { logFile: path.join(dir, 'b.log'), ready: async () => true });
      expect(() => process.kill(d.pid, 0)).not.toThrow();
      await d.stop();
      expect(() => process.kill(d.pid, 0)).toThrow();
    } finally {
      removeDir(dir);
    }
  });
});

describe('fixtures', () => {
  it('are deterministic (rebuilt in memory: same digests as pushed)', () => {
    const again = fixtureData();
    for (const [ref, f] of Object.entries(fx)) {
      expect(again[ref].digest, ref).toBe(f.digest);
      expect(again[ref].blobs, ref).toEqual(f.blobs);
    }
    expect(Object.keys(fx).sort()).toEqual(
      ['a/b/c:latest', 'docker/list:2.0', 'docker/single:v1', 'docker/single:v2', 'oci/multi:1.0', 'oci/single:1.0', 'oci/single:Release.1.0-RC_1'].sort(),
    );
  });

  it('have the expected shapes', () => {
    expect(fx['oci/single:1.0'].mediaType).toBe(MT.ociManifest);
    expect(fx['oci/single:1.0'].platforms[0].layerDigests).toHaveLength(2);
    expect(fx['oci/single:Release.1.0-RC_1'].digest).toBe(fx['oci/single:1.0'].digest);
    expect(fx['docker/single:v1'].mediaType).toBe(MT.dockerManifest);
    expect(fx['docker/single:v2'].digest).not.toBe(fx['docker/single:v1'].digest);
    expect(fx['oci/multi:1.0'].mediaType).toBe(MT.ociIndex);
    expect(fx['oci/multi:1.0'].platforms.map((p) => p.platform)).toEqual(['linux/amd64', 'linux/arm64/v8']);
    expect(fx['oci/multi:1.0'].attestations).toHaveLength(1);
    expect(fx['oci/multi:1.0'].attestations![0].refersTo).toBe(plat('oci/multi:1.0', 'linux/amd64').digest);
    expect(fx['docker/list:2.0'].mediaType).toBe(MT.dockerList);
    expect(fx['docker/list:2.0'].platforms.map((p) => p.platform)).toEqual(['linux/amd64', 'linux/arm64/v8', 'linux/arm/v7']);
    expect(fx['docker/list:2.0'].platforms.every((p) => p.mediaType === MT.dockerManifest)).toBe(true);
    // a/b/c shares its first layer with oci/single:1.0
    expect(fx['a/b/c:latest'].platforms[0].layerDigests[0]).toBe(fx['oci/single:1.0'].platforms[0].layerDigests[0]);
    // every manifest's bytes hash to their key
    for (const f of Object.values(fx)) for (const [d, m] of Object.entries(f.manifests)) expect(sha256(m.body)).toBe(d);
  });

  it('layers are real tar.gz archives (GNU tar lists them) and diff_ids match', async () => {
    const dir = makeTempDir();
    try {
      const f = fx['docker/list:2.0'];
      const p = plat('docker/list:2.0', 'linux/arm/v7');
      const blobs = f.image.blobs;
      const layer = blobs.get(p.layerDigests[0])!;
      fs.writeFileSync(path.join(dir, 'l.tgz'), layer);
      const listing = await run('tar', ['-tvzf', path.join(dir, 'l.tgz')]);
      expect(listing.stdout).toMatch(/-rw-r--r-- root\/root\s+\d+ 1970-01-01 00:00 hello\.txt/);
      const content = await run('tar', ['-xzOf', path.join(dir, 'l.tgz'), 'hello.txt']);
      expect(content.stdout).toBe('hello from docker/list linux/arm/v7\n');
      const config = JSON.parse(blobs.get(p.configDigest)!.toString());
      expect(config).toMatchObject({ architecture: 'arm', os: 'linux', variant: 'v7', config: { Cmd: ['/hello'] } });
      const { gunzipSync } = await import('node:zlib');
      expect(config.rootfs.diff_ids).toEqual([sha256(gunzipSync(layer))]);
      // the tar writer handles contents that are an exact multiple of 512 bytes and empty files
      const tar = makeTar([{ name: 'a', content: Buffer.alloc(512, 65) }, { name: 'empty', content: '' }]);
      fs.writeFileSync(path.join(dir, 'x.tar'), tar);
      expect((await run('tar', ['-tf', path.join(dir, 'x.tar')])).stdout).toBe('a\nempty\n');
    } finally {
      removeDir(dir);
    }
  });

  it('the upstream serves every fixture with its exact media type and digest', async () => {
    for (const f of Object.values(fx)) {
      const res = await fetch(`${plain.url}/v2/${f.name}/manifests/${f.tag}`, { headers: { Accept: ACCEPT } });
      expect(res.status, `${f.name}:${f.tag}`).toBe(200);
      expect(res.headers.get('content-type')).toBe(f.mediaType);
      expect(res.headers.get('docker-content-digest')).toBe(f.digest);
      expect(Buffer.from(await res.arrayBuffer()).equals(f.manifests[f.digest].body)).toBe(true);
      for (const b of f.blobs) {
        const h = await fetch(`${plain.url}/v2/${f.name}/blobs/${b}`, { method: 'HEAD' });
        expect(h.status, `${f.name} blob ${b}`).toBe(200);
        expect(Number(h.headers.get('content-length'))).toBe(f.blobSizes[b]);
      }
    }
  });
});

describe('auth upstreams (same storage)', () => {
  it('htpasswd: 401 without or with wrong credentials, 200 with', async () => {
    const anon = await fetch(`${htp.url}/v2/`);
    expect(anon.status).toBe(401);
    expect(parseChallenge(anon.headers.get('www-authenticate'))?.scheme).toBe('Basic');
    const m = await fetch(`${htp.url}/v2/oci/single/manifests/1.0`, { headers: { Accept: ACCEPT } });
    expect(m.status).toBe(401);
    const basic = (u: string, p: string) => ({ Authorization: `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}` });
    expect((await fetch(`${htp.url}/v2/`, { headers: basic(USER, 'wrong') })).status).toBe(401);
    expect((await fetch(`${htp.url}/v2/`, { headers: basic(USER, PASS) })).status).toBe(200);
    const ok = await fetch(`${htp.url}/v2/oci/single/manifests/1.0`, { headers: { Accept: ACCEPT, ...basic(USER, PASS) } });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('docker-content-digest')).toBe(fx['oci/single:1.0'].digest);
  });

  it('token: 401 + Bearer challenge without a token, token from the realm, 200 with it', async () => {
    const before = tok.tokenRequests!();
    const anon = await fetch(`${tok.url}/v2/oci/multi/manifests/1.0`, { headers: { Accept: ACCEPT } });
    expect(anon.status).toBe(401);
    const ch = parseChallenge(anon.headers.get('www-authenticate'))!;
    expect(ch.scheme).toBe('Bearer');
    expect(ch.params).toMatchObject({ realm: tok.realm, service: 'registrish-test', scope: 'repository:oci/multi:pull' });
    expect((await fetch(`${tok.url}/v2/`)).status).toBe(401);
    // the issuer wants the right credentials
    await expect(fetchToken(ch, { user: USER, pass: 'wrong' })).rejects.toThrow(/401/);
    const token = await fetchToken(ch, { user: USER, pass: PASS });
    const ok = await fetch(`${tok.url}/v2/oci/multi/manifests/1.0`, { headers: { Accept: ACCEPT, Authorization: `Bearer ${token}` } });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('docker-content-digest')).toBe(fx['oci/multi:1.0'].digest);
    // a token for one repository does not open another
    const other = await fetch(`${tok.url}/v2/docker/list/manifests/2.0`, { headers: { Accept: ACCEPT, Authorization: `Bearer ${token}` } });
    expect(other.status).toBe(401);
    const viaHelper = await fetchWithAuth(`${tok.url}/v2/docker/list/manifests/2.0`, { headers: { Accept: ACCEPT } }, { user: USER, pass: PASS });
    expect(viaHelper.headers.get('docker-content-digest')).toBe(fx['docker/list:2.0'].digest);
    expect(tok.tokenRequests!() - before).toBe(3);
  });

  it('moving a tag through the no-auth registry is seen through the auth ones', async () => {
    const v1 = fx['docker/single:v1'];
    const v2 = fx['docker/single:v2'];
    const digestVia = async (r: UpstreamRegistry) =>
      (await fetchWithAuth(`${r.url}/v2/docker/single/manifests/v1`, { method: 'HEAD', headers: { Accept: ACCEPT } }, { user: USER, pass: PASS })).headers.get(
        'docker-content-digest',
      );
    try {
      await tagManifest(plain.url, 'docker/single', 'v1', v2.manifests[v2.digest].body, v2.mediaType);
      expect(await digestVia(htp)).toBe(v2.digest);
      expect(await digestVia(tok)).toBe(v2.digest);
    } finally {
      await tagManifest(plain.url, 'docker/single', 'v1', v1.manifests[v1.digest].body, v1.mediaType);
    }
    expect(await digestVia(htp)).toBe(v1.digest);
  });
});

describe('skopeo', () => {
  it('copies single manifests, by tag and by digest', async () => {
    const a = await timed('skopeo copy oci/single:1.0', () => skopeoCopy(`${plain.host}/oci/single:1.0`));
    expect(a.manifestDigest).toBe(fx['oci/single:1.0'].digest);
    const f = fx['oci/single:1.0'];
    expect(a.files).toEqual(expect.arrayContaining([...f.blobs.map((b) => b.slice(7)), 'manifest.json']));
    expect((await skopeoCopy(`${plain.host}/oci/single:Release.1.0-RC_1`)).manifestDigest).toBe(f.digest);
    expect((await skopeoCopy(`${plain.host}/docker/single:v1`)).manifestDigest).toBe(fx['docker/single:v1'].digest);
    expect((await skopeoCopy(`${plain.host}/a/b/c:latest`)).manifestDigest).toBe(fx['a/b/c:latest'].digest);
    const armv7 = plat('docker/list:2.0', 'linux/arm/v7');
    expect((await skopeoCopy(`${plain.host}/docker/list@${armv7.digest}`)).manifestDigest).toBe(armv7.digest);
  }, T);

  it('picks the platform from an index (--override-arch) and keeps the index with --all', async () => {
    const amd = await skopeoCopy(`${plain.host}/oci/multi:1.0`);
    expect(amd.manifestDigest).toBe(plat('oci/multi:1.0', 'linux/amd64').digest);
    const arm = await timed('skopeo copy --override-arch arm64 oci/multi:1.0', () => skopeoCopy(`${plain.host}/oci/multi:1.0`, { arch: 'arm64' }));
    expect(arm.manifestDigest).toBe(plat('oci/multi:1.0', 'linux/arm64/v8').digest);
    const v7 = await skopeoCopy(`${plain.host}/docker/list:2.0`, { arch: 'arm', variant: 'v7' });
    expect(v7.manifestDigest).toBe(plat('docker/list:2.0', 'linux/arm/v7').digest);
    const all = await timed('skopeo copy --all oci/multi:1.0', () => skopeoCopy(`${plain.host}/oci/multi:1.0`, { all: true }));
    expect(all.manifestDigest).toBe(fx['oci/multi:1.0'].digest);
    expect(all.mediaType).toBe(MT.ociIndex);
    expect(all.files).toContain(`${fx['oci/multi:1.0'].attestations![0].digest.slice(7)}.manifest.json`);
    const raw = await skopeoInspectRaw(`${plain.host}/docker/list:2.0`);
    expect(raw.digest).toBe(fx['docker/list:2.0'].digest);
  }, T);

  it('authenticates against the htpasswd and token upstreams', async () => {
    const creds = { user: USER, pass: PASS };
    expect((await skopeoCopy(`${htp.host}/docker/single:v1`, { creds })).manifestDigest).toBe(fx['docker/single:v1'].digest);
    const before = tok.tokenRequests!();
    expect((await skopeoCopy(`${tok.host}/oci/multi:1.0`, { creds, arch: 'arm64' })).manifestDigest).toBe(plat('oci/multi:1.0', 'linux/arm64/v8').digest);
    expect(tok.tokenRequests!()).toBeGreaterThan(before);
    await expect(skopeoCopy(`${htp.host}/docker/single:v1`)).rejects.toThrow(/unauthorized|authentication required|401/i);
  }, T);
});

describe('podman', () => {
  it('pulls single manifests and indexes (reports the index digest for an index)', async () => {
    const s = await timed('podman pull docker/single:v1', () => podmanPull(`${plain.host}/docker/single:v1`));
    expect(s.digest).toBe(fx['docker/single:v1'].digest);
    expect(s.instanceDigest).toBe(fx['docker/single:v1'].digest);
    expect(s.configDigest).toBe(fx['docker/single:v1'].platforms[0].configDigest);
    const m = await timed('podman pull oci/multi:1.0', () => podmanPull(`${plain.host}/oci/multi:1.0`));
    expect(m.digest).toBe(fx['oci/multi:1.0'].digest);
    expect(m.instanceDigest).toBe(plat('oci/multi:1.0', 'linux/amd64').digest);
    expect(m.configDigest).toBe(plat('oci/multi:1.0', 'linux/amd64').configDigest);
    const arm = await podmanPull(`${plain.host}/docker/list:2.0`, { arch: 'arm64' });
    expect(arm.digest).toBe(fx['docker/list:2.0'].digest);
    expect(arm.configDigest).toBe(plat('docker/list:2.0', 'linux/arm64/v8').configDigest);
    expect(arm.architecture).toBe('arm64');
    const c = await podmanPull(`${plain.host}/a/b/c:latest`);
    expect(c.digest).toBe(fx['a/b/c:latest'].digest);
  }, T);
});

describe('containerd (ctr)', () => {
  let cd: Containerd;
  beforeAll(async () => {
    cd = await timed('containerd start', () => startContainerd());
  }, HOOK);
  afterAll(async () => {
    await cd?.stop();
  }, HOOK);

  it('pulls (fetch, verify, unpack) and reports the target digest', async () => {
    const s = await timed('ctr pull oci/single:1.0', () => ctrPull(cd.address, `${plain.host}/oci/single:1.0`));
    expect(s.digest).toBe(fx['oci/single:1.0'].digest);
    expect(s.content).toEqual(expect.arrayContaining([fx['oci/single:1.0'].digest, ...fx['oci/single:1.0'].blobs]));
    const m = await ctrPull(cd.address, `${plain.host}/oci/multi:1.0`);
    expect(m.digest).toBe(fx['oci/multi:1.0'].digest);
    expect(m.mediaType).toBe(MT.ociIndex);
    expect(m.unpacked).toEqual(['linux/amd64']);
    expect(m.content).toContain(plat('oci/multi:1.0', 'linux/amd64').digest);
    expect(m.content).not.toContain(plat('oci/multi:1.0', 'linux/arm64/v8').digest);
    const byDigest = await ctrPull(cd.address, `${plain.host}/docker/single@${fx['docker/single:v1'].digest}`);
    expect(byDigest.digest).toBe(fx['docker/single:v1'].digest);
    expect((await ctrPull(cd.address, `${plain.host}/a/b/c:latest`)).digest).toBe(fx['a/b/c:latest'].digest);
  }, T);

  it('--platform linux/arm64 on a Docker manifest list fetches the arm64 child', async () => {
    const r = await timed('ctr pull --platform linux/arm64 docker/list:2.0', () =>
      ctrPull(cd.address, `${plain.host}/docker/list:2.0`, { platform: 'linux/arm64' }),
    );
    const arm = plat('docker/list:2.0', 'linux/arm64/v8');
    expect(r.digest).toBe(fx['docker/list:2.0'].digest);
    expect(r.mediaType).toBe(MT.dockerList);
    expect(r.unpacked).toEqual(['linux/arm64']);
    expect(r.content).toEqual(expect.arrayContaining([arm.digest, arm.configDigest, ...arm.layerDigests]));
    expect(r.content).not.toContain(plat('docker/list:2.0', 'linux/amd64').digest);
  }, T);
});

describe('docker (dockerd)', () => {
  let dd: Dockerd;
  beforeAll(async () => {
    dd = await timed('dockerd start (incl. its containerd)', () => startDockerd());
  }, HOOK);
  afterAll(async () => {
    await dd?.stop();
  }, HOOK);

  it('pulls single manifests, lists and indexes, by tag and by digest', async () => {
    const s = await timed('docker pull oci/single:1.0', () => dockerPull(dd.host, `${plain.host}/oci/single:1.0`));
    expect(s.digest).toBe(fx['oci/single:1.0'].digest);
    expect(s.imageId).toBe(fx['oci/single:1.0'].platforms[0].configDigest);
    const l = await timed('docker pull docker/list:2.0', () => dockerPull(dd.host, `${plain.host}/docker/list:2.0`));
    expect(l.digest).toBe(fx['docker/list:2.0'].digest);
    expect(l.imageId).toBe(plat('docker/list:2.0', 'linux/amd64').configDigest);
    const m = await dockerPull(dd.host, `${plain.host}/oci/multi:1.0`);
    expect(m.digest).toBe(fx['oci/multi:1.0'].digest);
    const d = await dockerPull(dd.host, `${plain.host}/docker/single@${fx['docker/single:v1'].digest}`);
    expect(d.digest).toBe(fx['docker/single:v1'].digest);
    const c = await dockerPull(dd.host, `${plain.host}/a/b/c:latest`);
    expect(c.digest).toBe(fx['a/b/c:latest'].digest);
  }, T);
});
