import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRegistry, type BuildOptions } from '../src/build.ts';
import { startPreviewServer, type PreviewServer } from '../src/serve/server.ts';
import { formatError } from '../src/util/errors.ts';
import {
  docker,
  docker25Members,
  legacyArchiveMembers,
  ociLayoutMembers,
  podman,
  rawTar,
  savedImage,
  skopeoToArchive,
  writeBigArchive,
  type RawMember,
} from './harness/archives.ts';
import { ctrPull, dockerPull, dockerRemoveAllImages, podmanPull, skopeoCopy, startContainerd, startDockerd, type Containerd, type Dockerd } from './harness/clients.ts';
import { diffSnapshots, snapshotTree } from './harness/fault-proxy.ts';
import { CLIENTS, type ClientName } from './harness/host-site.ts';
import { buildManifest, gzip, makeLayer, makeTar, pushImage, seedUpstream, type Fixtures } from './harness/images.ts';
import { makeTempDir, removeDir, run } from './harness/procs.ts';
import { startRegistry, type UpstreamRegistry } from './harness/upstream.ts';

// The archive sources (docker-archive:, oci-archive:) against archives the real tools write:
// docker save (dockerd 20.10), podman save in both formats, skopeo copy to both transports, a
// gzipped docker save, and docker ≥ 25's layout written by hand. Each is built, served by the
// preview server and pulled by the four real clients, which must end up with the saved image's ID
// (its config digest). Then: picking an image in a multi-image archive, hostile archives (each a
// build error naming the archive and the member, the previous output untouched), and memory.

const REPO = path.resolve(import.meta.dirname, '..');
const sha = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

function buildOptions(project: string, extra: Partial<BuildOptions> = {}): BuildOptions {
  return {
    images: path.join(project, 'images.json'),
    outputDir: path.join(project, '_site'),
    cacheDir: path.join(project, '.cache'),
    hosts: ['netlify'],
    imageConcurrency: 4,
    blobConcurrency: 4,
    linkMode: 'hardlink',
    logger: { info: () => {}, warn: () => {} },
    env: { DOCKER_CONFIG: path.join(project, 'no-docker-config') },
    ...extra,
  };
}

/** A build that must fail: its message (formatError), or a test failure when it succeeds. */
async function failedBuild(options: BuildOptions): Promise<string> {
  const error = await buildRegistry(options).then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(error, 'the build should have been refused').toBeDefined();
  return formatError(error);
}

// ---------------------------------------------------------------------------------------------

describe('archives written by the real tools, pulled by the real clients', () => {
  let storage: string;
  let project: string;
  let up: UpstreamRegistry;
  let fx: Fixtures;
  let containerd: Containerd;
  let dockerd: Dockerd;
  let server: PreviewServer;
  let registry: string;
  /** Each published image (name:tag on our registry) → the saved image's ID (config digest), known once saved. */
  const savedId = new Map<string, string>();

  beforeAll(async () => {
    storage = makeTempDir('rsh-arch-up-');
    project = makeTempDir('rsh-arch-');
    const archives = path.join(project, 'archives');
    await mkdir(archives);
    const daemons = (async () => {
      containerd = await startContainerd();
      dockerd = await startDockerd(containerd.address);
    })();
    up = await startRegistry({ storageDir: storage });
    fx = await seedUpstream(up.url);
    // Two images whose top layers are the same: docker save (< 25) writes the second one's layer.tar as a symlink.
    const shared = makeLayer([{ name: 'shared.txt', content: 'one layer, two images\n' }]);
    for (const name of ['a', 'b']) {
      await pushImage(up.url, `share/${name}`, '1', buildManifest({ format: 'docker', platform: { os: 'linux', architecture: 'amd64' }, layers: [shared], cmd: [`/${name}`] }));
    }
    await daemons;

    // docker: an image docker made itself (import), and pulled ones; saved, then removed from the daemon.
    const dk = docker(dockerd.host, path.join(project, 'docker-cli'));
    await writeFile(path.join(project, 'rootfs.tar'), makeTar([{ name: 'imported.txt', content: `made by docker import ${Date.now()}\n` }]));
    await dk('import', path.join(project, 'rootfs.tar'), 'local/imported:1');
    const pulled = ['oci/single:1.0', 'docker/single:v1', 'share/a:1', 'share/b:1'].map((r) => `${up.host}/${r}`);
    for (const r of pulled) await dk('pull', r);
    const id = (r: string) => dk('image', 'inspect', '--format', '{{.Id}}', r);
    const importedId = await id('local/imported:1');
    const pickedId = await id(`${up.host}/docker/single:v1`);
    const sharedId = await id(`${up.host}/share/b:1`);
    await dk('save', '-o', path.join(archives, 'docker-one.tar'), 'local/imported:1');
    await dk('save', '-o', path.join(archives, 'docker-multi.tar'), ...pulled);
    await writeFile(path.join(archives, 'docker-gz.tar'), gzip(await readFile(path.join(archives, 'docker-one.tar'))));
    await dockerRemoveAllImages(dockerd.host);

    // podman: both formats of one pulled image (an OCI one: saving a Docker-format image as oci-archive
    // converts its config, a new image ID that podman itself would load).
    const pm = podman();
    try {
      await pm.run('pull', '--tls-verify=false', '--signature-policy', pm.policy, `${up.host}/oci/single:1.0`);
      await pm.run('save', '--format', 'docker-archive', '-o', path.join(archives, 'podman-docker.tar'), `${up.host}/oci/single:1.0`);
      await pm.run('save', '--format', 'oci-archive', '-o', path.join(archives, 'podman-oci.tar'), `${up.host}/oci/single:1.0`);
      const podmanId = `sha256:${await pm.run('image', 'inspect', '--format', '{{.Id}}', `${up.host}/oci/single:1.0`)}`;
      savedId.set('podman/docker:latest', podmanId).set('podman/oci:1.0', podmanId);
    } finally {
      pm.stop();
    }

    // skopeo: a single image to docker-archive:PATH:NAME:TAG, an index (--all) to oci-archive:PATH:TAG.
    await skopeoToArchive(`${up.host}/a/b/c:latest`, `docker-archive:${path.join(archives, 'skopeo-docker.tar')}:abc/img:2.0`);
    await skopeoToArchive(`${up.host}/oci/multi:1.0`, `oci-archive:${path.join(archives, 'skopeo-oci.tar')}:1.0`, { all: true });

    // docker ≥ 25 (not installable here): its layout, by hand.
    const newer = savedImage('docker 25');
    await writeFile(path.join(archives, 'docker25.tar'), rawTar(docker25Members(newer, 'registrish.test/new:25', '25')));

    savedId
      .set('docker/one:latest', importedId)
      .set('docker/gz:gz', importedId)
      .set('docker/picked:v1', pickedId)
      .set('docker/shared:1', sharedId)
      .set('abc/img:2.0', fx['a/b/c:latest']!.platforms[0]!.configDigest)
      .set('skopeo/oci:1.0', fx['oci/multi:1.0']!.platforms.find((p) => p.platform === 'linux/amd64')!.configDigest)
      .set('new:25', newer.configDigest);

    const images = [
      { source: 'docker-archive:archives/docker-one.tar', name: 'docker/one' },
      { source: 'docker-archive:archives/docker-gz.tar', name: 'docker/gz', tags: ['gz'] },
      { source: `docker-archive:archives/docker-multi.tar:${up.host}/docker/single:v1`, name: 'docker/picked' },
      { source: `docker-archive:archives/docker-multi.tar:${up.host}/share/b:1`, name: 'docker/shared' },
      { source: 'docker-archive:archives/docker-multi.tar:@2', name: 'docker/indexed', tags: ['a'] },
      { source: 'docker-archive:archives/podman-docker.tar', name: 'podman/docker' },
      { source: 'oci-archive:archives/podman-oci.tar', name: 'podman/oci', tags: ['1.0', 'latest'] },
      'docker-archive:archives/skopeo-docker.tar:abc/img:2.0',
      { source: 'oci-archive:archives/skopeo-oci.tar:1.0', name: 'skopeo/oci' },
      'docker-archive:archives/docker25.tar:registrish.test/new:25',
    ];
    await writeFile(path.join(project, 'images.json'), JSON.stringify({ images }, null, 2));
    await buildRegistry(buildOptions(project));
    server = await startPreviewServer({ dir: path.join(project, '_site'), port: 0 });
    registry = new URL(server.url).host;
  });

  afterAll(async () => {
    await server?.close();
    await dockerd?.stop();
    await containerd?.stop();
    await up?.stop();
    removeDir(storage);
    removeDir(project);
  });

  const published = (ref: string) => {
    const [name, tag] = ref.split(':') as [string, string];
    return readFile(path.join(project, '_site', 'v2', name, 'manifests', tag));
  };

  const CASES: Array<[kind: string, ref: string]> = [
    ['docker save, one image, reference omitted', 'docker/one:latest'],
    ['docker save, gzip-compressed (no .gz in the name)', 'docker/gz:gz'],
    ['docker save, one of four picked by name:tag', 'docker/picked:v1'],
    ['docker save, a layer.tar that is a symlink into another image', 'docker/shared:1'],
    ['podman save --format docker-archive', 'podman/docker:latest'],
    ['podman save --format oci-archive', 'podman/oci:1.0'],
    ['skopeo copy to docker-archive:PATH:NAME:TAG', 'abc/img:2.0'],
    ['skopeo copy --all to oci-archive:PATH:TAG (an index)', 'skopeo/oci:1.0'],
    ['docker ≥ 25 layout (OCI blobs, one gzip layer)', 'new:25'],
  ];

  it('publishes a Docker schema 2 manifest over the saved config bytes, the same bytes on every build', async () => {
    const manifest = JSON.parse((await published('docker/one:latest')).toString());
    expect(manifest.mediaType).toBe('application/vnd.docker.distribution.manifest.v2+json');
    expect(manifest.config).toEqual({ mediaType: 'application/vnd.docker.container.image.v1+json', size: expect.any(Number), digest: savedId.get('docker/one:latest') });
    expect(manifest.layers.map((l: { mediaType: string }) => l.mediaType)).toEqual(['application/vnd.docker.image.rootfs.diff.tar']);
    const gz = JSON.parse((await published('docker/gz:gz')).toString());
    expect(gz).toEqual(manifest); // the same layers, whether the archive was compressed or not
    // @2 is the third image of manifest.json (docker save lists them in no particular order).
    const list = JSON.parse((await run('tar', ['-xOf', path.join(project, 'archives', 'docker-multi.tar'), 'manifest.json'])).stdout);
    const indexed = JSON.parse((await published('docker/indexed:a')).toString());
    expect(indexed.config.digest).toBe(`sha256:${list[2].Config.replace(/\.json$/u, '')}`);
    const newer = JSON.parse((await published('new:25')).toString());
    expect(newer.layers.map((l: { mediaType: string }) => l.mediaType)).toEqual([
      'application/vnd.docker.image.rootfs.diff.tar',
      'application/vnd.docker.image.rootfs.diff.tar.gzip',
    ]);

    const before = await Promise.all(CASES.map(([, ref]) => published(ref)));
    // A rebuild from an empty cache writes every manifest again: byte for byte the same.
    await rm(path.join(project, '.cache'), { recursive: true });
    await buildRegistry(buildOptions(project));
    expect(await Promise.all(CASES.map(([, ref]) => published(ref)))).toEqual(before);
  });

  describe.each(CLIENTS)('%s', (client: ClientName) => {
    it.each(CASES)('pulls %s with the saved image ID', async (_kind, name) => {
      const top = sha(await published(name));
      const ref = `${registry}/${name}`;
      const config = savedId.get(name)!;
      expect(config).toMatch(/^sha256:[0-9a-f]{64}$/);
      if (client === 'skopeo') {
        const r = await skopeoCopy(ref, { arch: 'amd64' });
        expect((r.manifest.config as { digest: string }).digest).toBe(config);
      } else if (client === 'podman') {
        const r = await podmanPull(ref, { arch: 'amd64' });
        expect(r.digest).toBe(top);
        expect(r.configDigest).toBe(config);
      } else if (client === 'containerd (ctr)') {
        const r = await ctrPull(containerd.address, ref, { platform: 'linux/amd64' });
        expect(r.digest).toBe(top);
        expect(r.content).toContain(config);
      } else {
        await dockerRemoveAllImages(dockerd.host);
        const r = await dockerPull(dockerd.host, ref);
        expect(r.digest).toBe(top);
        expect(r.imageId).toBe(config);
      }
    });
  });

  it('a multi-image archive needs a reference that picks exactly one; an archive that is not there is named', async () => {
    const sel = makeTempDir('rsh-arch-sel-');
    try {
      const build = async (source: string) => {
        await writeFile(path.join(sel, 'images.json'), JSON.stringify({ images: [{ source, name: 'x' }] }));
        return failedBuild(buildOptions(sel));
      };
      const multi = path.join(project, 'archives', 'docker-multi.tar');
      expect(await build(`docker-archive:${multi}`)).toMatch(
        new RegExp(`docker-archive:${multi}: the archive holds 4 images; name the one to publish .*\\n  It holds @0: [^;]+; @1: [^;]+; @2: [^;]+; @3: [^;]+\\.$`),
      );
      expect(await build(`docker-archive:${multi}:${up.host}/oci/single:2.0`)).toContain(`no image in the archive is tagged "${up.host}/oci/single:2.0"`);
      expect(await build(`docker-archive:${multi}:@4`)).toContain('there is no image @4: the archive holds 4');
      expect(await build(`oci-archive:${path.join(project, 'archives', 'skopeo-oci.tar')}:2.0`)).toMatch(/no image named "2\.0" in index\.json \(of 1\)\n  Names in this archive: "1\.0"/);
      // Two images with the same RepoTags entry: manifest.json is the last member legacyArchiveMembers writes.
      const [one, two] = [legacyArchiveMembers(savedImage('one'), 'x:1'), legacyArchiveMembers(savedImage('two'), 'x:1')];
      const list = [...JSON.parse(String(one.pop()!.content)), ...JSON.parse(String(two.pop()!.content))];
      await writeFile(path.join(sel, 'twice.tar'), rawTar([...one, ...two, { name: 'manifest.json', content: JSON.stringify(list) }]));
      expect(await build('docker-archive:twice.tar:x:1')).toContain('2 images in the archive are tagged "docker.io/library/x:1" (@0, @1); pick one by its index');
      expect(await build('docker-archive:no/such.tar')).toMatch(
        new RegExp(`docker-archive:${sel}/no/such\\.tar: cannot read the archive: there is no such file\\n  Paths in images.json are relative to its folder[^\\n]*$`),
      );
    } finally {
      removeDir(sel);
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('hostile archives: a build error naming the archive and the member, nothing written', () => {
  let project: string;
  let previous: Map<string, Buffer>;
  let count = 0;
  const img = savedImage('hostile');
  const config = `${img.configDigest.slice(7)}.json`;
  const layer0 = `${img.layers[0]!.diffId.slice(7)}/layer.tar`;
  const layer1 = `${img.layers[1]!.diffId.slice(7)}/layer.tar`;
  const good = () => legacyArchiveMembers(img, 'hostile/app:1');
  const edit = (name: string, change: Partial<RawMember>, members = good()) => members.map((m) => (m.name === name ? { ...m, ...change } : m));
  const without = (name: string) => good().filter((m) => m.name !== name);
  /** The config with one byte changed: no longer the digest it is named by. */
  const forgedConfig = Buffer.from(img.config.toString().replace('/hello', '/hullo'));
  const q = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/gu, '\\$&');

  beforeAll(async () => {
    project = makeTempDir('rsh-arch-hostile-');
    await writeFile(path.join(project, 'good.tar'), rawTar(good()));
    await writeFile(path.join(project, 'images.json'), JSON.stringify({ images: [{ source: 'docker-archive:good.tar', name: 'good' }] }));
    await buildRegistry(buildOptions(project));
    previous = await snapshotTree(path.join(project, '_site'));
    expect(previous.size).toBeGreaterThan(5);
  });
  afterAll(() => removeDir(project));

  /** Builds `bytes` as an archive of `kind`: refused with `expected`, naming the archive; the output unchanged. */
  async function refused(kind: 'docker-archive' | 'oci-archive', bytes: Buffer, expected: RegExp): Promise<void> {
    const file = path.join(project, `hostile-${++count}.tar`);
    await writeFile(file, bytes);
    await writeFile(path.join(project, 'images.json'), JSON.stringify({ images: [{ source: `${kind}:${path.basename(file)}`, name: 'hostile' }] }));
    const message = await failedBuild(buildOptions(project));
    if (process.env.SHOW_HOSTILE_MESSAGES) console.log(message.split('\n')[0]);
    expect(message).toContain(`${kind}:${file}: `);
    expect(message).toMatch(expected);
    expect(diffSnapshots(previous, await snapshotTree(path.join(project, '_site')))).toEqual([]);
  }

  const dockerCases: Array<[string, () => Buffer, RegExp]> = [
    ['a "../" member name', () => rawTar([...good(), { name: '../x', content: 'x' }]), /member "\.\.\/x" climbs out of the archive with "\.\."/],
    ['a "../" deeper in a name', () => rawTar([{ name: 'a/../../x', content: 'x' }, ...good()]), /member "a\/\.\.\/\.\.\/x" climbs out/],
    ['an absolute member name', () => rawTar([{ name: '/etc/passwd', content: 'x' }, ...good()]), /member "\/etc\/passwd" has an absolute name/],
    [
      'a layer that is a symlink out of the archive',
      () => rawTar(edit(layer0, { type: '2', linkName: '../../etc/passwd', content: '' })),
      new RegExp(`member "${q(layer0)}" is a symbolic link out of the archive \\("\\.\\./\\.\\./etc/passwd"\\)`),
    ],
    [
      'a layer that is an absolute symlink',
      () => rawTar(edit(layer0, { type: '2', linkName: '/etc/passwd', content: '' })),
      new RegExp(`member "${q(layer0)}" is a symbolic link to the absolute path "/etc/passwd"`),
    ],
    [
      'a layer that is a symlink to a symlink',
      () => rawTar([...edit(layer0, { type: '2', linkName: '../x', content: '' }), { name: 'x', type: '2', linkName: layer1 }]),
      new RegExp(`member "${q(layer0)}" is a symbolic link to "x", which is a symbolic link; only one link is followed`),
    ],
    [
      'a layer that is a symlink to nothing',
      () => rawTar(edit(layer0, { type: '2', linkName: '../nothing', content: '' })),
      new RegExp(`member "${q(layer0)}" is a symbolic link to "nothing", which is not in the archive`),
    ],
    [
      'a layer that is a hard link',
      () => rawTar(edit(layer0, { type: '1', linkName: layer1, content: '' })),
      new RegExp(`member "${q(layer0)}" is a hard link \\(to "${q(layer1)}"\\), where manifest.json \\(image @0\\) needs a regular file \\(hard links are refused\\)`),
    ],
    ['a FIFO where the config should be', () => rawTar(edit(config, { type: '6', content: '' })), new RegExp(`member "${config}" is a special member \\(tar type "6"\\)`)],
    ['a member twice', () => rawTar([...good(), { name: `./${layer1}`, content: 'another layer' }]), new RegExp(`member "\\./${q(layer1)}" appears twice in the archive`)],
    [
      'a truncated archive',
      () => {
        const tar = rawTar(good());
        return tar.subarray(0, tar.indexOf(img.layers[1]!.tar) + 700);
      },
      new RegExp(`the archive ends inside member "${q(layer1)}" \\(truncated\\)`),
    ],
    [
      'a truncated gzip archive',
      () => {
        const gz = gzip(rawTar(good()));
        return gz.subarray(0, gz.length - 40);
      },
      /the gzip stream is damaged or truncated at member "manifest\.json" \(unexpected end of file\)/,
    ],
    ['no end-of-archive marker', () => rawTar(good(), { end: false }), /the archive ends without the end-of-archive marker after member "manifest\.json" \(truncated\)/],
    [
      'a member longer than its header says',
      () => rawTar(edit(config, { headerSize: img.config.length - 512 })),
      new RegExp(`after member "${config}" are not a tar header \\(that member is longer than its header says`),
    ],
    [
      'a member longer than its header says, within the padding',
      () => rawTar(edit(config, { headerSize: img.config.length - 1 })),
      new RegExp(`member "${config}" hashes to sha256:[0-9a-f]{64}, not to the image ID its name gives`),
    ],
    ['a member shorter than its header says', () => rawTar(edit(config, { headerSize: img.config.length + 1024 })), new RegExp(`member "${config}"`)],
    ['manifest.json naming a missing layer', () => rawTar(without(layer1)), new RegExp(`manifest.json \\(image @0\\) names member "${q(layer1)}", which is not in the archive`)],
    [
      'a layer that is not the one its config lists',
      () => rawTar(edit(layer1, { content: img.layers[0]!.tar })),
      new RegExp(
        `member "${q(layer1)}" is layer 2 of manifest.json \\(image @0\\), but its content hashes to ${img.layers[0]!.diffId}, not to the diff_id "${img.layers[1]!.diffId}"`,
      ),
    ],
    [
      'a config that is not the image its name says',
      () => rawTar(edit(config, { content: forgedConfig })),
      new RegExp(`member "${config}" hashes to sha256:[0-9a-f]{64}, not to the image ID its name gives`),
    ],
    [
      'a blob that is not what its name says',
      () => rawTar(edit(`blobs/sha256/${img.configDigest.slice(7)}`, { content: forgedConfig }, docker25Members(img, 'x:1', '1'))),
      new RegExp(`member "blobs/sha256/${img.configDigest.slice(7)}" hashes to sha256:[0-9a-f]{64}, not to the digest its name gives`),
    ],
    [
      'a gzip layer that does not decompress',
      () => rawTar(edit(layer1, { content: Buffer.concat([img.layers[1]!.blob.subarray(0, 20), Buffer.alloc(50)]) })),
      new RegExp(`member "${q(layer1)}" is not a valid gzip stream`),
    ],
    [
      'manifest.json over the JSON cap',
      () => rawTar([...without('manifest.json'), { name: 'manifest.json', content: `[${' '.repeat(5 * 1024 * 1024)}]` }]),
      /member "manifest\.json" is 5\.0 MiB, over the 4\.0 MiB limit for a JSON document/,
    ],
    ['manifest.json that is not JSON', () => rawTar(edit('manifest.json', { content: '[{"Config": ' })), /member "manifest\.json" is not valid JSON/],
    [
      'an OCI archive read as a docker archive',
      () => rawTar(ociLayoutMembers(img, '1').members),
      /the archive has no manifest\.json, so it is not what docker save writes\n  It holds an OCI layout \(index\.json\): read it as "oci-archive:PATH"/,
    ],
    [
      'a zstd-compressed archive',
      () => Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), Buffer.alloc(600)]),
      /the archive is zstd-compressed; registrish reads plain and gzip-compressed archives/,
    ],
    ['not a tar archive at all', () => Buffer.from('just some text, not a tar archive'.repeat(40)), /the bytes at offset 0 are not a tar header \(not a tar archive\?\)/],
  ];
  it.each(dockerCases)('docker-archive: %s', async (_name, bytes, expected) => refused('docker-archive', bytes(), expected));

  const oci = ociLayoutMembers(img, '1');
  const manifestBlob = `blobs/sha256/${sha(oci.manifest).slice(7)}`;
  const lastBlob = `blobs/sha256/${sha(oci.blobs[1]!).slice(7)}`;
  const lastSize = oci.blobs[1]!.length;
  /** The layout with index.json listing `manifests` (descriptors of `oci.manifest` unless given). */
  const withIndex = (manifests: object[], extra: RawMember[] = [], members = oci.members) =>
    rawTar([...members.filter((m) => m.name !== 'index.json'), ...extra, { name: 'index.json', content: JSON.stringify({ schemaVersion: 2, manifests }) }]);
  const descriptor = (bytes: Buffer, name: string, size = bytes.length) => ({
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    digest: sha(bytes),
    size,
    annotations: { 'org.opencontainers.image.ref.name': name },
  });
  const lyingManifest = Buffer.from(oci.manifest.toString().replace(`"size":${lastSize}`, `"size":${lastSize + 1}`));
  const ociCases: Array<[string, () => Buffer, RegExp]> = [
    [
      'a blob shorter than its descriptor says',
      () =>
        withIndex(
          [descriptor(lyingManifest, '1')],
          [{ name: `blobs/sha256/${sha(lyingManifest).slice(7)}`, content: lyingManifest }],
          oci.members.filter((m) => m.name !== manifestBlob),
        ),
      new RegExp(`member "${q(lastBlob)}" is ${lastSize} bytes, but manifest ${sha(lyingManifest)} says ${lastSize + 1}`),
    ],
    [
      'an index.json entry whose size lies',
      () => withIndex([descriptor(oci.manifest, '1', 7)]),
      new RegExp(`member "${q(manifestBlob)}" is ${oci.manifest.length} bytes, but index.json says 7`),
    ],
    [
      'a manifest naming a missing blob',
      () => rawTar(oci.members.filter((m) => m.name !== lastBlob)),
      new RegExp(`manifest ${sha(oci.manifest)} names member "${q(lastBlob)}", which is not in the archive`),
    ],
    [
      'a blob that is not what its name says',
      () => rawTar(edit(lastBlob, { content: Buffer.from(oci.blobs[1]!).fill(7, 30, 40) }, oci.members)),
      new RegExp(`member "${q(lastBlob)}" hashes to sha256:[0-9a-f]{64}, not to the digest its name gives`),
    ],
    [
      'a manifest that is a symlink out of the archive',
      () => rawTar(edit(manifestBlob, { type: '2', linkName: '../../../../etc/passwd', content: '' }, oci.members)),
      new RegExp(`member "${q(manifestBlob)}" is a symbolic link out of the archive`),
    ],
    [
      'index.json over the JSON cap',
      () => rawTar(edit('index.json', { content: `{"manifests": []${' '.repeat(4 * 1024 * 1024 + 1)}}` }, oci.members)),
      /member "index\.json" is 4\.0 MiB, over the 4\.0 MiB limit for a JSON document/,
    ],
    [
      'a docker archive read as an OCI archive',
      () => rawTar(good()),
      /the archive has no index\.json, so it is not an OCI image layout\n  It holds a manifest\.json, as docker save writes: read it as "docker-archive:PATH"/,
    ],
    [
      'several images and no name',
      () => withIndex([descriptor(oci.manifest, 'v1'), descriptor(oci.manifest, 'v2')]),
      /the archive holds 2 images, none named "latest": name the one to publish \(write oci-archive:PATH or oci-archive:PATH:NAME\)\n  Names in this archive: "v1", "v2"/,
    ],
  ];
  it.each(ociCases)('oci-archive: %s', async (_name, bytes, expected) => refused('oci-archive', bytes(), expected));
});

// ---------------------------------------------------------------------------------------------

describe('memory', () => {
  it('an archive with a 256 MiB layer builds with memory growing by well under the layer size', async () => {
    const project = makeTempDir('rsh-arch-mem-');
    try {
      const layer = 256 * 1024 * 1024;
      const diffId = await writeBigArchive(path.join(project, 'big.tar'), layer);
      await writeFile(path.join(project, 'images.json'), JSON.stringify({ images: ['docker-archive:big.tar'] }));
      // A child process: its peak RSS (maxRSS) is the build's alone, not the test runner's.
      const script = path.join(project, 'build.mts');
      await writeFile(
        script,
        `import { buildRegistry } from ${JSON.stringify(path.join(REPO, 'src/build.ts'))};
const options = JSON.parse(process.argv[2]);
const before = process.memoryUsage().rss;
await buildRegistry({ ...options, logger: { info() {}, warn() {} } });
process.stdout.write(JSON.stringify({ before, peak: process.resourceUsage().maxRSS * 1024 }));
`,
      );
      const { logger: _logger, ...options } = buildOptions(project);
      const out = await new Promise<string>((resolve, reject) => {
        const child = spawn(process.execPath, ['--import', 'tsx', script, JSON.stringify(options)], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (c: Buffer) => (stdout += c));
        child.stderr.on('data', (c: Buffer) => (stderr += c));
        child.on('error', reject);
        child.on('close', (code) => (code === 0 ? resolve(stdout) : reject(new Error(`build child exited with ${code}:\n${stderr}`))));
      });
      const { before, peak } = JSON.parse(out) as { before: number; peak: number };
      const growth = peak - before;
      console.log(`256 MiB layer: peak RSS grew by ${(growth / 1024 / 1024).toFixed(0)} MiB`);
      expect(growth).toBeLessThan(64 * 1024 * 1024);
      const manifest = JSON.parse(await readFile(path.join(project, '_site', 'v2', 'big', 'manifests', 'latest'), 'utf8'));
      expect(manifest.layers).toEqual([{ mediaType: 'application/vnd.docker.image.rootfs.diff.tar', size: layer + 1536, digest: diffId }]);
    } finally {
      removeDir(project);
    }
  });
});
