// Wrappers for the four real pull clients, each in its own temp state. Every pull returns the
// digest the client reports/keeps so tests can compare with the fixtures, plus its duration.
//
// Measured here (2 cores, Debian 12, against docker-registry 2.8 on loopback, tiny images):
//   skopeo copy            ~30–60 ms per copy
//   podman pull            ~70–130 ms per pull (+ inspect; fresh vfs storage each time)
//   containerd start       ~0.1 s;  ctr images pull (fetch+unpack) ~0.15 s
//   dockerd start          ~0.25–0.3 s incl. its containerd;  docker pull ~0.12–0.22 s
//
// Which digest each client reports for an index / manifest list pulled by tag:
//   skopeo copy (no --all)  the chosen platform manifest is what lands in dir:/manifest.json
//   skopeo copy --all       the index itself
//   podman image inspect    .Digest = the top-level digest (index); .RepoDigests = [index, instance];
//                           .Id = config digest of the chosen platform
//   ctr images ls           DIGEST = the image target = the index; content store holds the chosen child
//   docker pull             "Digest:" = the index (manifest list) digest
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { makeTempDir, removeDir, run, spawnDaemon, tailFile, type Daemon } from './procs.ts';

const sha256File = (f: string): string => `sha256:${crypto.createHash('sha256').update(fs.readFileSync(f)).digest('hex')}`;

export interface Creds {
  user: string;
  pass: string;
}

/** containers/image config shared by skopeo and podman: no host policy, auth or registries.conf. */
function containersEnv(dir: string): { env: NodeJS.ProcessEnv; policy: string } {
  const policy = path.join(dir, 'policy.json');
  fs.writeFileSync(policy, JSON.stringify({ default: [{ type: 'insecureAcceptAnything' }] }));
  const registries = path.join(dir, 'registries.conf');
  fs.writeFileSync(registries, 'unqualified-search-registries = []\nshort-name-mode = "disabled"\n');
  const containersConf = path.join(dir, 'containers.conf');
  fs.writeFileSync(containersConf, '');
  const authFile = path.join(dir, 'auth.json'); // podman insists that it exists
  fs.writeFileSync(authFile, '{"auths":{}}\n');
  return {
    policy,
    env: {
      ...process.env,
      REGISTRY_AUTH_FILE: authFile,
      CONTAINERS_REGISTRIES_CONF: registries,
      CONTAINERS_CONF: containersConf,
      TMPDIR: dir,
    },
  };
}

// ---------------------------------------------------------------------------------------------
// skopeo

export interface SkopeoCopyOptions {
  arch?: string;
  variant?: string;
  os?: string;
  /** --all: copy the index and every instance */
  all?: boolean;
  creds?: Creds;
  /** Keep the dir: copy (caller removes it); default: removed after reading. */
  keepDir?: boolean;
  timeoutMs?: number;
}

export interface SkopeoCopyResult {
  /** sha256 of dir:/manifest.json — the manifest skopeo kept (the index with --all). */
  manifestDigest: string;
  mediaType: string | undefined;
  manifest: Record<string, unknown>;
  /** file names in the dir: copy (blobs by hex digest, '<hex>.manifest.json' for --all instances) */
  files: string[];
  /** set when keepDir */
  dir?: string;
  ms: number;
  stderr: string;
}

/** `skopeo copy docker://REF dir:TMP`; REF is '127.0.0.1:PORT/name:tag' or 'host/name@sha256:…'. */
export async function skopeoCopy(ref: string, opts: SkopeoCopyOptions = {}): Promise<SkopeoCopyResult> {
  const tmp = makeTempDir('rsh-sk-');
  try {
    const { env } = containersEnv(tmp);
    const dest = path.join(tmp, 'image');
    const args = ['--insecure-policy'];
    if (opts.os) args.push('--override-os', opts.os);
    if (opts.arch) args.push('--override-arch', opts.arch);
    if (opts.variant) args.push('--override-variant', opts.variant);
    args.push('copy', '--src-tls-verify=false', '--retry-times', '0');
    if (opts.creds) args.push('--src-creds', `${opts.creds.user}:${opts.creds.pass}`);
    else args.push('--src-no-creds');
    if (opts.all) args.push('--all');
    args.push(`docker://${ref}`, `dir:${dest}`);
    const r = await run('skopeo', args, { env, timeoutMs: opts.timeoutMs ?? 120_000 });
    const mf = path.join(dest, 'manifest.json');
    const manifest = JSON.parse(fs.readFileSync(mf, 'utf8')) as Record<string, unknown>;
    const result: SkopeoCopyResult = {
      manifestDigest: sha256File(mf),
      mediaType: typeof manifest.mediaType === 'string' ? manifest.mediaType : undefined,
      manifest,
      files: fs.readdirSync(dest).sort(),
      ms: r.ms,
      stderr: r.stderr,
    };
    if (opts.keepDir) {
      const keep = makeTempDir('rsh-skd-');
      fs.renameSync(dest, path.join(keep, 'image'));
      result.dir = path.join(keep, 'image');
    }
    return result;
  } finally {
    removeDir(tmp);
  }
}

/** `skopeo inspect --raw`: the manifest bytes exactly as served, and their digest. */
export async function skopeoInspectRaw(ref: string, opts: { creds?: Creds } = {}): Promise<{ digest: string; body: Buffer; ms: number }> {
  const tmp = makeTempDir('rsh-sk-');
  try {
    const { env } = containersEnv(tmp);
    const args = ['--insecure-policy', 'inspect', '--raw', '--tls-verify=false', '--retry-times', '0'];
    if (opts.creds) args.push('--creds', `${opts.creds.user}:${opts.creds.pass}`);
    else args.push('--no-creds');
    args.push(`docker://${ref}`);
    const r = await run('skopeo', args, { env, timeoutMs: 60_000 });
    // skopeo prints the raw bytes (+ a newline added by the CLI when missing)
    const body = Buffer.from(r.stdout, 'utf8');
    const digest = `sha256:${crypto.createHash('sha256').update(body).digest('hex')}`;
    return { digest, body, ms: r.ms };
  } finally {
    removeDir(tmp);
  }
}

// ---------------------------------------------------------------------------------------------
// podman

export interface PodmanPullOptions {
  arch?: string;
  variant?: string;
  os?: string;
  creds?: Creds;
  timeoutMs?: number;
}

export interface PodmanPullResult {
  /**
   * `podman image inspect --format {{.Digest}}`: the digest of what the tag points to —
   * for an index / manifest list that is the INDEX digest, not the platform manifest's.
   */
  digest: string;
  /** RepoDigests: for an index, both the index and the chosen instance (as 'host/name@sha256:…'). */
  repoDigests: string[];
  /** Digest of the chosen platform manifest (RepoDigests entry that is not .Digest; = digest for a single manifest). */
  instanceDigest: string;
  /** Image ID = config digest of the chosen platform manifest ('sha256:…'). */
  configDigest: string;
  architecture: string;
  os: string;
  ms: number;
  stderr: string;
}

/** `podman pull --tls-verify=false REF` into a fresh vfs storage (removed afterwards). */
export async function podmanPull(ref: string, opts: PodmanPullOptions = {}): Promise<PodmanPullResult> {
  const tmp = makeTempDir('rsh-pm-');
  try {
    const { env, policy } = containersEnv(tmp);
    const base = [
      '--storage-driver', 'vfs',
      '--root', path.join(tmp, 'root'),
      '--runroot', path.join(tmp, 'run'),
      '--tmpdir', path.join(tmp, 'tmp'),
      '--events-backend', 'file',
      '--cgroup-manager', 'cgroupfs',
      '--log-level', 'error',
    ];
    const args = [...base, 'pull', '--tls-verify=false', '--signature-policy', policy];
    if (opts.os) args.push('--os', opts.os);
    if (opts.arch) args.push('--arch', opts.arch);
    if (opts.variant) args.push('--variant', opts.variant);
    if (opts.creds) args.push('--creds', `${opts.creds.user}:${opts.creds.pass}`);
    args.push(ref);
    const r = await run('podman', args, { env, timeoutMs: opts.timeoutMs ?? 120_000 });
    const inspect = await run('podman', [...base, 'image', 'inspect', ref], { env, timeoutMs: 60_000 });
    const [img] = JSON.parse(inspect.stdout) as Array<{
      Id: string;
      Digest: string;
      RepoDigests: string[] | null;
      Architecture: string;
      Os: string;
    }>;
    const repoDigests = img.RepoDigests ?? [];
    const digestsOnly = repoDigests.map((d) => d.slice(d.lastIndexOf('@') + 1));
    return {
      digest: img.Digest,
      repoDigests,
      instanceDigest: digestsOnly.find((d) => d !== img.Digest) ?? img.Digest,
      configDigest: img.Id.startsWith('sha256:') ? img.Id : `sha256:${img.Id}`,
      architecture: img.Architecture,
      os: img.Os,
      ms: r.ms,
      stderr: r.stderr,
    };
  } finally {
    removeDir(tmp);
  }
}

// ---------------------------------------------------------------------------------------------
// containerd + ctr

export interface Containerd {
  /** grpc unix socket path (what ctr --address and dockerd --containerd take) */
  address: string;
  dir: string;
  logFile: string;
  pid: number;
  startMs: number;
  stop(): Promise<void>;
}

const socketAnswers = (sock: string): Promise<boolean> =>
  new Promise((resolve) => {
    const c = net.connect(sock);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });

/** A private containerd (CRI disabled; root/state in a temp dir; socket /tmp/rsh-XXXXXX/c.sock). */
export async function startContainerd(opts: { timeoutMs?: number } = {}): Promise<Containerd> {
  const t0 = Date.now();
  const dir = makeTempDir('rsh-');
  const address = path.join(dir, 'c.sock');
  if (address.length > 100) throw new Error(`containerd socket path too long: ${address}`);
  const config = path.join(dir, 'config.toml');
  fs.writeFileSync(
    config,
    [
      'version = 2',
      `root = "${dir}/root"`,
      `state = "${dir}/state"`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      '[grpc]',
      `  address = "${address}"`,
      '[ttrpc]',
      `  address = "${address}.ttrpc"`,
      '[debug]',
      '  address = ""',
      '  level = "warn"',
      '[metrics]',
      '  address = ""',
      '[plugins."io.containerd.internal.v1.opt"]',
      `  path = "${dir}/opt"`,
      // each ctrPull uses a fresh namespace; "isolated" makes it download everything again
      '[plugins."io.containerd.metadata.v1.bolt"]',
      '  content_sharing_policy = "isolated"',
      '',
    ].join('\n'),
  );
  const logFile = path.join(dir, 'containerd.log');
  let daemon: Daemon;
  try {
    daemon = await spawnDaemon('containerd', ['--config', config], {
      logFile,
      timeoutMs: opts.timeoutMs ?? 60_000,
      ready: async () =>
        (await socketAnswers(address)) &&
        (await run('ctr', ['--address', address, 'version'], { allowFailure: true, timeoutMs: 10_000 })).code === 0,
    });
  } catch (e) {
    removeDir(dir);
    throw e;
  }
  return {
    address,
    dir,
    logFile,
    pid: daemon.pid,
    startMs: Date.now() - t0,
    async stop() {
      await daemon.stop();
      removeDir(dir);
    },
  };
}

export interface CtrPullOptions {
  /** e.g. 'linux/arm64' (default: the host platform) */
  platform?: string;
  allPlatforms?: boolean;
  /** containerd namespace; default: a fresh one per pull (nothing cached from earlier pulls) */
  namespace?: string;
  creds?: Creds;
  timeoutMs?: number;
  /** The registry speaks HTTPS with a certificate ctr cannot verify (`--skip-verify` instead of `--plain-http`). */
  skipVerify?: boolean;
}

export interface CtrPullResult {
  /** image target digest from `ctr images ls` — for an index / list, the INDEX digest */
  digest: string;
  /** TYPE column (media type of the target) */
  mediaType: string;
  /** PLATFORMS column: platforms the index lists (or the image's own) */
  platforms: string[];
  /** platforms ctr unpacked ("unpacking linux/arm64 sha256:…") */
  unpacked: string[];
  /** every digest in the namespace's content store after the pull (manifests, configs, layers) */
  content: string[];
  namespace: string;
  ms: number;
  output: string;
}

let nsCounter = 0;

/** `ctr images pull --plain-http|--skip-verify --snapshotter native [--platform P] REF` (fetch + verify + unpack). */
export async function ctrPull(address: string, ref: string, opts: CtrPullOptions = {}): Promise<CtrPullResult> {
  const namespace = opts.namespace ?? `rsh${process.pid}n${++nsCounter}`;
  const base = ['--address', address, '--namespace', namespace];
  const args = [...base, 'images', 'pull', '--snapshotter', 'native'];
  if (opts.skipVerify) {
    // ctr 1.6 speaks plain HTTP to a loopback host unless its hosts.toml names an https server.
    const host = ref.slice(0, ref.indexOf('/'));
    const hostsDir = makeTempDir('rsh-ctrh-');
    fs.mkdirSync(path.join(hostsDir, host));
    fs.writeFileSync(path.join(hostsDir, host, 'hosts.toml'), `server = "https://${host}"\nskip_verify = true\n\n[host."https://${host}"]\n  capabilities = ["pull", "resolve"]\n  skip_verify = true\n`);
    args.push('--hosts-dir', hostsDir);
  } else args.push('--plain-http');
  if (opts.platform) args.push('--platform', opts.platform);
  if (opts.allPlatforms) args.push('--all-platforms');
  if (opts.creds) args.push('--user', `${opts.creds.user}:${opts.creds.pass}`);
  args.push(ref);
  const r = await run('ctr', args, { timeoutMs: opts.timeoutMs ?? 120_000 });
  const ls = await run('ctr', [...base, 'images', 'ls', `name==${ref}`], { timeoutMs: 30_000 });
  const row = ls.stdout
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/))
    .find((cols) => cols[0] === ref);
  if (!row) throw new Error(`ctr pull ${ref}: image not listed afterwards:\n${ls.stdout}\n${r.stdout}\n${r.stderr}`);
  // REF TYPE DIGEST SIZE(2 cols: "1.5 KiB") PLATFORMS LABELS
  const content = await run('ctr', [...base, 'content', 'ls', '-q'], { timeoutMs: 30_000 });
  const out = r.stdout + r.stderr;
  return {
    digest: row[2],
    mediaType: row[1],
    platforms: (row[5] ?? '').split(',').filter(Boolean),
    unpacked: [...out.matchAll(/unpacking (\S+) sha256:/g)].map((m) => m[1]),
    content: content.stdout.split('\n').map((s) => s.trim()).filter((s) => s.startsWith('sha256:')),
    namespace,
    ms: r.ms,
    output: out,
  };
}

// ---------------------------------------------------------------------------------------------
// dockerd + docker

export interface Dockerd {
  /** 'unix:///tmp/rsh-XXXXXX/d.sock' — for docker -H */
  host: string;
  dir: string;
  logFile: string;
  pid: number;
  startMs: number;
  stop(): Promise<void>;
}

/** The docker CLI matching Debian's dockerd when present (a newer one may sit earlier on PATH). */
export const dockerCli = (): string => (fs.existsSync('/usr/bin/docker') ? '/usr/bin/docker' : 'docker');

function dockerEnv(dir: string): NodeJS.ProcessEnv {
  const cfg = path.join(dir, 'cli');
  fs.mkdirSync(cfg, { recursive: true });
  // no credential helpers / contexts from the host's ~/.docker
  return { ...process.env, DOCKER_CONFIG: cfg, DOCKER_CONTEXT: '', DOCKER_HOST: '' };
}

/**
 * A private dockerd (vfs, no bridge/iptables, data/exec root in a temp dir). It uses the given
 * containerd, or starts its own via startContainerd() (stopped with it).
 */
export async function startDockerd(containerdAddress?: string, opts: { timeoutMs?: number } = {}): Promise<Dockerd> {
  const t0 = Date.now();
  const own = containerdAddress ? undefined : await startContainerd();
  const address = containerdAddress ?? own!.address;
  const dir = makeTempDir('rsh-');
  const sock = path.join(dir, 'd.sock');
  const host = `unix://${sock}`;
  const cfgFile = path.join(dir, 'daemon.json');
  // else dockerd 20.10 writes its trust key to /etc/docker/key.json
  fs.writeFileSync(cfgFile, `${JSON.stringify({ 'deprecated-key-path': path.join(dir, 'key.json') })}\n`);
  const logFile = path.join(dir, 'dockerd.log');
  const env = dockerEnv(dir);
  let daemon: Daemon;
  try {
    daemon = await spawnDaemon(
      'dockerd',
      [
        '--config-file', cfgFile,
        '--iptables=false', '--ip6tables=false', '--ip-masq=false', '--bridge=none',
        '--storage-driver=vfs',
        '--data-root', path.join(dir, 'data'),
        '--exec-root', path.join(dir, 'e'),
        '--pidfile', path.join(dir, 'd.pid'),
        '-H', host,
        '--containerd', address,
        '--log-level', 'warn',
      ],
      {
        env,
        logFile,
        timeoutMs: opts.timeoutMs ?? 90_000,
        ready: async () =>
          (await socketAnswers(sock)) &&
          (await run(dockerCli(), ['-H', host, 'version'], { env, allowFailure: true, timeoutMs: 10_000 })).code === 0,
      },
    );
  } catch (e) {
    await own?.stop();
    removeDir(dir);
    throw e;
  }
  return {
    host,
    dir,
    logFile,
    pid: daemon.pid,
    startMs: Date.now() - t0,
    async stop() {
      await daemon.stop(15_000);
      await own?.stop();
      removeDir(dir);
    },
  };
}

export interface DockerPullResult {
  /** the "Digest: sha256:…" line — for an index / manifest list, the INDEX digest */
  digest: string;
  /** image ID (config digest of the chosen platform) */
  imageId: string;
  ms: number;
  output: string;
}

/** `docker -H HOST pull REF` (127.0.0.0/8 is an insecure registry by default: plain HTTP works). */
export async function dockerPull(host: string, ref: string, opts: { platform?: string; timeoutMs?: number } = {}): Promise<DockerPullResult> {
  const tmp = makeTempDir('rsh-dk-');
  try {
    const env = dockerEnv(tmp);
    const args = ['-H', host, 'pull'];
    if (opts.platform) args.push('--platform', opts.platform);
    args.push(ref);
    const r = await run(dockerCli(), args, { env, timeoutMs: opts.timeoutMs ?? 120_000 });
    const m = /^Digest: (sha256:[a-f0-9]{64})\s*$/m.exec(r.stdout);
    if (!m) throw new Error(`docker pull ${ref}: no Digest line in output:\n${r.stdout}\n${r.stderr}`);
    const id = await run(dockerCli(), ['-H', host, 'image', 'inspect', '--format', '{{.Id}}', ref], { env, timeoutMs: 30_000 });
    return { digest: m[1], imageId: id.stdout.trim(), ms: r.ms, output: r.stdout + r.stderr };
  } finally {
    removeDir(tmp);
  }
}

/** `docker rmi -f` every image of the daemon (so the next pull downloads everything again). */
export async function dockerRemoveAllImages(host: string): Promise<void> {
  const tmp = makeTempDir('rsh-dk-');
  try {
    const env = dockerEnv(tmp);
    const ids = (await run(dockerCli(), ['-H', host, 'images', '-aq', '--no-trunc'], { env })).stdout.split('\n').filter(Boolean);
    if (ids.length) await run(dockerCli(), ['-H', host, 'rmi', '-f', ...new Set(ids)], { env, allowFailure: true });
  } finally {
    removeDir(tmp);
  }
}

export { tailFile };
