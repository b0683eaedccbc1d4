import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'vitest';
import { buildRegistry, type BuildSummary } from '../../src/build.ts';
import { headersFor } from '../../src/publish/headers.ts';
import { ctrPull, dockerPull, podmanPull, skopeoCopy, startContainerd, startDockerd, type Containerd, type Dockerd } from './clients.ts';
import { seedUpstream, type Fixtures } from './images.ts';
import { hasCommand, makeTempDir, removeDir } from './procs.ts';
import { startRegistry, type UpstreamRegistry } from './upstream.ts';
import { keyPair, seedSignedApp, type SignedApp } from './attachments.ts';
import { type PublishedPath } from '../../src/model/published-path.ts';

// What every "real static server + four real clients" test needs: a seeded upstream, a build for
// one host, the container daemons, and one way to pull an image and compare what each client got.

export const CLIENTS = ['skopeo', 'podman', 'containerd (ctr)', 'docker'] as const;
export type ClientName = (typeof CLIENTS)[number];

export interface Daemons {
  containerd: Containerd;
  dockerd: Dockerd;
}

export interface HostSite extends Daemons {
  storage: string;
  /** Project folder (mode 755: unprivileged server workers must traverse it). */
  project: string;
  /** Scratch folder for the server's own config, pid and log files. */
  runDir: string;
  out: string;
  up: UpstreamRegistry;
  fx: Fixtures;
  /** The signed image published with its attachments (signature, attestation, referrers). */
  signed: SignedApp;
  summary: BuildSummary;
  stop(): Promise<void>;
}

/** Seeds a real upstream, builds the standard image set for `host` (with its options), and starts containerd + dockerd. */
export async function startHostSite(host: string, prefix: string, hostOptions?: Record<string, unknown>): Promise<HostSite> {
  for (const c of ['skopeo', 'podman', 'ctr', 'containerd', 'dockerd']) {
    if (!hasCommand(c)) throw new Error(`${c} is not installed: run scripts/install-test-deps.sh as root`);
  }
  const storage = makeTempDir('rsh-up-');
  const project = makeTempDir(`rsh-${prefix}-`);
  const runDir = makeTempDir(`rsh-${prefix}run-`);
  fs.chmodSync(project, 0o755);
  const out = path.join(project, '_site');
  // The daemons start while the upstream is seeded and the registry is built.
  const daemons = (async (): Promise<Daemons> => {
    const containerd = await startContainerd();
    return { containerd, dockerd: await startDockerd(containerd.address) };
  })();
  const up = await startRegistry({ storageDir: storage });
  const fx = await seedUpstream(up.url);
  // A signed image with attachments: its .sig/.att tags and referrers answers go through the host too.
  const signed = await seedSignedApp(up.url, up.host, keyPair('ec'));
  const images = {
    images: [
      { source: `${up.host}/signed/app:1.0`, attachments: true },
      `${up.host}/oci/multi:1.0`,
      `${up.host}/docker/list:2.0`,
      `${up.host}/a/b/c`,
      `${up.host}/docker/single:v1`,
      { source: `${up.host}/oci/single:1.0`, tags: ['1.0', 'Release.1.0-RC_1'] },
    ],
  };
  await writeFile(path.join(project, 'images.json'), JSON.stringify(images, null, 2));
  const summary = await buildRegistry({
    images: path.join(project, 'images.json'),
    outputDir: out,
    cacheDir: path.join(project, '.cache', 'registrish'),
    hosts: [host],
    ...(hostOptions ? { hostOptions } : {}),
    imageConcurrency: 4,
    blobConcurrency: 6,
    linkMode: 'hardlink',
    logger: { info: () => {}, warn: () => {} },
    env: { DOCKER_CONFIG: path.join(project, 'no-docker-config') },
  });
  const { containerd, dockerd } = await daemons;
  return {
    storage,
    project,
    runDir,
    out,
    up,
    fx,
    signed,
    summary,
    containerd,
    dockerd,
    async stop() {
      await dockerd.stop();
      await containerd.stop();
      await up.stop();
      removeDir(storage);
      removeDir(project);
      removeDir(runDir);
    },
  };
}

export const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** The response carries exactly headersFor(p), and no Content-Encoding. */
export function expectExactHeaders(p: PublishedPath, res: Response): void {
  for (const [name, value] of headersFor(p)) expect(res.headers.get(name), `${p.urlPath} ${name}`).toBe(value);
  expect(res.headers.get('content-encoding'), p.urlPath).toBeNull();
}

/** An image to pull and the digests each client must end up with. */
export interface PullCase {
  kind: string;
  /** `name:tag` on our registry. */
  ref: string;
  /** Digest the tag resolves to (index or manifest). */
  top: () => string;
  /** Digest of the platform manifest a client on `platform` keeps. */
  instance: () => string;
  platform?: 'linux/amd64' | 'linux/arm64';
}

/** The standard cases of startHostSite's image set (pulled as linux/amd64). */
export function hostSiteCases(fx: () => Fixtures, withMixedCaseTag = true): PullCase[] {
  const f = (key: string) => {
    const x = fx()[key];
    if (!x) throw new Error(`no fixture ${key}`);
    return x;
  };
  const amd64 = (key: string) => () => f(key).platforms.find((x) => x.platform.startsWith('linux/amd64'))!.digest;
  const single = (key: string) => () => f(key).digest;
  const cases: PullCase[] = [
    { kind: 'OCI index with attestation', ref: 'oci/multi:1.0', top: single('oci/multi:1.0'), instance: amd64('oci/multi:1.0') },
    { kind: 'Docker manifest list', ref: 'docker/list:2.0', top: single('docker/list:2.0'), instance: amd64('docker/list:2.0') },
    { kind: 'nested name', ref: 'a/b/c:latest', top: single('a/b/c:latest'), instance: single('a/b/c:latest') },
    { kind: 'single Docker manifest', ref: 'docker/single:v1', top: single('docker/single:v1'), instance: single('docker/single:v1') },
  ];
  if (withMixedCaseTag) {
    cases.push({ kind: 'single OCI manifest, mixed-case tag', ref: 'oci/single:Release.1.0-RC_1', top: single('oci/single:1.0'), instance: single('oci/single:1.0') });
  }
  return cases;
}

/**
 * Pulls `registry/ref` with one real client and checks the digests it reports. `https`: the registry
 * speaks HTTPS with a self-signed certificate (docker, skopeo and podman accept it for an insecure
 * registry; ctr is told --skip-verify).
 */
export async function expectPull(client: ClientName, registry: string, c: PullCase, daemons: Daemons, opts: { https?: boolean } = {}): Promise<void> {
  const ref = `${registry}/${c.ref}`;
  const platform = c.platform ?? 'linux/amd64';
  const arch = platform.split('/')[1]!;
  if (client === 'skopeo') {
    expect((await skopeoCopy(ref, { arch })).manifestDigest).toBe(c.instance());
  } else if (client === 'podman') {
    const r = await podmanPull(ref, { arch });
    expect(r.digest).toBe(c.top());
    expect(r.instanceDigest).toBe(c.instance());
  } else if (client === 'containerd (ctr)') {
    expect((await ctrPull(daemons.containerd.address, ref, { platform, skipVerify: opts.https })).digest).toBe(c.top());
  } else {
    expect((await dockerPull(daemons.dockerd.host, ref, platform === 'linux/amd64' ? {} : { platform })).digest).toBe(c.top());
  }
}
