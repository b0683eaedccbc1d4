import crypto from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import type { RegistryData, RepositoryData } from '../src/catalog/types.ts';
import { renderApacheFiles } from '../src/hosts/apache.ts';
import { cloudflareMismatches, cloudflareRules } from '../src/hosts/cloudflare.ts';
import { NGINX_PORT, NGINX_STANDALONE_FILE } from '../src/hosts/nginx.ts';
import { MAX_CHART_ARCHIVE_BYTES, readChartFiles } from '../src/catalog/helm-chart.ts';
import { classifyManifest, kindOfIndex } from '../src/model/artifact-kind.ts';
import type { PublishedPath } from '../src/model/published-path.ts';
import { headersFor } from '../src/publish/headers.ts';
import { PATHS_FILE } from '../src/publish/paths-file.ts';
import { startPreviewServer, type PreviewServer } from '../src/serve/server.ts';
import { launchChromium } from './harness/browser.ts';
import { skopeoCopy, startContainerd, type Containerd } from './harness/clients.ts';
import { gzip, makeLayer, makeTar, MT, sha256, type TarEntry } from './harness/images.ts';
import { freePort, hasCommand, makeTempDir, removeDir, run, spawnDaemon } from './harness/procs.ts';
import { startRegistry, type UpstreamRegistry } from './harness/upstream.ts';

// Not only container images: a packaged Helm chart (two versions), a WebAssembly module, an
// ORAS-style artifact (artifactType, empty config) and an ordinary image, each written as an OCI
// layout here and pushed to the real upstream with skopeo; a chart whose README is hostile and a
// chart archive that is a gzip bomb. Built by real Eleventy; pulled back through the preview server
// by skopeo and containerd; the Helm repository index.yaml read with a YAML parser; the pages in
// Chromium (commands per kind, README and values, no other-origin request, axe, phone width).

const REPO = path.resolve(import.meta.dirname, '..');
const ELEVENTY = path.join(REPO, 'node_modules/@11ty/eleventy/cmd.cjs');
const AXE = createRequire(import.meta.url).resolve('axe-core/axe.min.js');
const HELM_CONFIG = 'application/vnd.cncf.helm.config.v1+json';
const HELM_CHART = 'application/vnd.cncf.helm.chart.content.v1.tar+gzip';
const EMPTY = { mediaType: 'application/vnd.oci.empty.v1+json', bytes: Buffer.from('{}') };
const TITLE = 'org.opencontainers.image.title';

let dir: string;
let up: UpstreamRegistry;
/** The same storage behind htpasswd: a private registry. */
let priv: UpstreamRegistry;
let containerd: Containerd;
let site: string;
let out: string;
let serve: PreviewServer;
let browser: Browser;
let data: RegistryData;
let buildOutput: string;
/** What was pushed: `name:tag` → manifest digest and every blob digest. */
const pushed = new Map<string, { digest: string; blobs: string[] }>();

interface Artifact {
  manifest: Buffer;
  blobs: Buffer[];
}

/** An OCI manifest over `config` and `layers` (each with optional annotations). */
function artifact(config: { mediaType: string; bytes: Buffer }, layers: Array<{ mediaType: string; bytes: Buffer; title?: string }>, artifactType?: string): Artifact {
  const desc = (mediaType: string, b: Buffer, title?: string) => ({ mediaType, digest: sha256(b), size: b.length, ...(title ? { annotations: { [TITLE]: title } } : {}) });
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MT.ociManifest,
      ...(artifactType ? { artifactType } : {}),
      config: desc(config.mediaType, config.bytes),
      layers: layers.map((l) => desc(l.mediaType, l.bytes, l.title)),
    }),
  );
  return { manifest, blobs: [config.bytes, ...layers.map((l) => l.bytes)] };
}

/** Writes `a` as an OCI image layout at `layout` with one tag. */
async function writeLayout(layout: string, tag: string, a: Artifact): Promise<void> {
  await mkdir(path.join(layout, 'blobs/sha256'), { recursive: true });
  for (const b of [a.manifest, ...a.blobs]) await writeFile(path.join(layout, 'blobs/sha256', sha256(b).slice(7)), b);
  await writeFile(path.join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  await writeFile(
    path.join(layout, 'index.json'),
    JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: MT.ociManifest, digest: sha256(a.manifest), size: a.manifest.length, annotations: { 'org.opencontainers.image.ref.name': tag } }] }),
  );
}

/** skopeo copy oci:LAYOUT:TAG docker://UPSTREAM/NAME:TAG, as the fixtures are pushed. */
async function push(name: string, tag: string, a: Artifact): Promise<void> {
  const layout = path.join(dir, 'layouts', name.replaceAll('/', '_'), tag);
  await writeLayout(layout, tag, a);
  const auth = path.join(dir, 'auth.json');
  await writeFile(auth, '{"auths":{}}');
  await run('skopeo', ['--insecure-policy', 'copy', '--dest-tls-verify=false', '--dest-no-creds', '--retry-times', '0', `oci:${layout}:${tag}`, `docker://${up.host}/${name}:${tag}`], {
    env: { ...process.env, REGISTRY_AUTH_FILE: auth, TMPDIR: dir },
    timeoutMs: 60_000,
  });
  pushed.set(`${name}:${tag}`, { digest: sha256(a.manifest), blobs: a.blobs.map((b) => sha256(b)) });
}

/** A chart as `helm package` writes it: a gzipped tar with the chart folder at the top; config = Chart.yaml as JSON. */
function helmChart(meta: Record<string, unknown>, files: Record<string, string | Buffer>): Artifact {
  const name = String(meta.name);
  const entries: TarEntry[] = [{ name: `${name}/Chart.yaml`, content: toYaml(meta) }, ...Object.entries(files).map(([f, content]) => ({ name: `${name}/${f}`, content }))];
  return artifact({ mediaType: HELM_CONFIG, bytes: Buffer.from(JSON.stringify(meta)) }, [{ mediaType: HELM_CHART, bytes: gzip(makeTar(entries)) }]);
}

const CHART_META = {
  apiVersion: 'v2',
  name: 'hello-chart',
  description: 'A chart that says hello',
  type: 'application',
  appVersion: '1.16.0',
  keywords: ['hello', 'demo'],
  home: 'https://example.com/hello',
  sources: ['https://example.com/hello/src'],
  maintainers: [{ name: 'Ada Lovelace', email: 'ada@example.com', url: 'https://example.com/ada' }],
  dependencies: [{ name: 'redis', version: '18.x', repository: 'oci://registry-1.docker.io/bitnamicharts', condition: 'redis.enabled' }],
  kubeVersion: '>=1.25.0-0',
  icon: 'https://example.com/hello/icon.png',
};
const README = '# Hello chart\n\nInstalls a **hello** service.\n\n## Parameters\n\n| key | default |\n|---|---|\n| `replicaCount` | `1` |\n\nSee [the docs](https://example.com/hello/docs).\n';
const VALUES = '# How many pods\nreplicaCount: 1\nimage:\n  repository: nginx\n  tag: "1.27"\n';
const TEMPLATE = 'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\nspec:\n  replicas: {{ .Values.replicaCount }}\n';
const HOSTILE_README = [
  '# Evil chart',
  '<script>window.__pwned=1</script>',
  '<img src="https://evil.example/track.png" onerror="window.__pwned=2">',
  '![logo](https://evil.example/logo.png)',
  '[click me](javascript:window.__pwned=3)',
  '<iframe src="https://evil.example/frame"></iframe>',
  '',
].join('\n\n');

beforeAll(async () => {
  dir = makeTempDir('rsh-artifacts-');
  // nginx's workers (nobody) serve the built folder: its parents must be traversable.
  await chmod(dir, 0o755);
  up = await startRegistry({ storageDir: path.join(dir, 'storage') });
  priv = await startRegistry({ storageDir: path.join(dir, 'storage'), auth: { kind: 'htpasswd', user: 'builder', pass: 's3cret-pass' } });
  const daemon = startContainerd();

  for (const version of ['0.2.0', '0.3.1']) {
    await push('charts/hello-chart', version, helmChart({ ...CHART_META, version }, { 'values.yaml': VALUES, 'README.md': README, 'templates/deployment.yaml': TEMPLATE, 'charts/sub/README.md': '# not this one\n' }));
  }
  await push('charts/evil', '1.0.0', helmChart({ apiVersion: 'v2', name: 'evil', version: '1.0.0', description: '<b>evil</b>', icon: 'https://evil.example/icon.png' }, { 'README.md': HOSTILE_README, 'values.yaml': 'x: "<script>window.__pwned=4</script>"\n' }));
  // 40 MiB of zeros before the README: ~40 KB of gzip that unpacks past the 32 MiB bound.
  await push('charts/bomb', '0.0.1', helmChart({ apiVersion: 'v2', name: 'bomb', version: '0.0.1' }, { 'filler.bin': Buffer.alloc(40 * 1024 * 1024), 'README.md': '# never read\n' }));
  // A WebAssembly module as the CNCF Wasm OCI artifact layout has it.
  const wasm = Buffer.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]);
  const wasmConfig = Buffer.from(JSON.stringify({ created: '2026-11-01T00:00:00Z', architecture: 'wasm', os: 'wasip1', layerDigests: [sha256(wasm)] }));
  await push('wasm/hello', '1.0', artifact({ mediaType: 'application/vnd.wasm.config.v0+json', bytes: wasmConfig }, [{ mediaType: 'application/wasm', bytes: wasm, title: 'hello.wasm' }]));
  // What `oras push --artifact-type … report.txt data.json` writes.
  await push(
    'oras/report',
    'v1',
    artifact(EMPTY, [
      { mediaType: 'text/plain', bytes: Buffer.from('all good\n'), title: 'report.txt' },
      { mediaType: 'application/json', bytes: Buffer.from('{"ok":true}\n'), title: 'data.json' },
    ], 'application/vnd.example.report.v1+json'),
  );
  const layer = makeLayer([{ name: 'index.html', content: 'hello\n' }]);
  const imageConfig = Buffer.from(JSON.stringify({ created: '2026-10-01T00:00:00Z', architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [layer.diffId] }, history: [{ created_by: 'COPY index.html /' }] }));
  const image = artifact({ mediaType: MT.ociConfig, bytes: imageConfig }, [{ mediaType: MT.ociLayerGzip, bytes: layer.blob }]);
  await push('apps/web', '1.0', image);

  site = path.join(dir, 'site');
  out = path.join(site, '_site');
  await mkdir(path.join(site, 'src'), { recursive: true });
  // The same image from a layout on the build machine: its path must not reach the pages.
  await writeLayout(path.join(site, 'private-layouts/web'), '1.0', image);
  await writeFile(path.join(site, 'package.json'), '{ "type": "module" }\n');
  await writeFile(path.join(site, 'src/registry.11ty.js'), 'export const data = { permalink: "/registry.json" };\nexport function render(d) { return JSON.stringify(d.registry); }\n');
  await writeFile(
    path.join(site, 'eleventy.config.js'),
    `import registrish from ${JSON.stringify(path.join(REPO, 'dist/index.js'))};
export default function (eleventyConfig) {
  eleventyConfig.addPlugin(registrish, { cacheDir: '.cache/reg', hosts: ['netlify', 'nginx', 'apache'] });
  return { dir: { input: 'src', output: '_site' } };
}
`,
  );
  await writeFile(
    path.join(site, 'images.json'),
    JSON.stringify({
      images: [
        { source: `${up.host}/charts/hello-chart`, tags: ['0.2.0', '0.3.1'] },
        `${up.host}/charts/evil:1.0.0`,
        `${up.host}/charts/bomb:0.0.1`,
        `${up.host}/wasm/hello:1.0`,
        `${up.host}/oras/report:v1`,
        `${up.host}/apps/web:1.0`,
        { source: 'oci:private-layouts/web:1.0', name: 'local/web' },
        { source: `${priv.host}/apps/web:1.0`, name: 'private/web' },
      ],
    }),
  );
  const r = await run(process.execPath, [ELEVENTY], {
    cwd: site,
    timeoutMs: 120_000,
    env: { ...process.env, NETLIFY: '', URL: '', DOCKER_CONFIG: path.join(dir, 'no-docker-config'), REGISTRISH_AUTH: JSON.stringify({ [priv.host]: 'builder:s3cret-pass' }) },
  });
  buildOutput = r.stdout + r.stderr;
  data = JSON.parse(await readFile(path.join(out, 'registry.json'), 'utf8')) as RegistryData;
  serve = await startPreviewServer({ dir: out, port: 0 });
  browser = await launchChromium();
  containerd = await daemon;
}, 300_000);

afterAll(async () => {
  await browser?.close();
  await serve?.close();
  await containerd?.stop();
  await up?.stop();
  await priv?.stop();
  removeDir(dir);
});

const repo = (name: string): RepositoryData => data.repositories.find((r) => r.name === name)!;

describe('the registry data: what each manifest is', () => {
  it('classifies every repository and gives each kind its facts', () => {
    expect(Object.fromEntries(data.repositories.map((r) => [r.name, r.kind]))).toEqual({
      'apps/web': 'image',
      'charts/bomb': 'helm-chart',
      'charts/evil': 'helm-chart',
      'charts/hello-chart': 'helm-chart',
      'local/web': 'image',
      'oras/report': 'artifact',
      'private/web': 'image',
      'wasm/hello': 'wasm',
    });
    const chart = repo('charts/hello-chart');
    // Highest version first (charts carry no creation date); no platform for a chart.
    expect(chart.tags.map((t) => t.name)).toEqual(['0.3.1', '0.2.0']);
    expect(chart.platforms).toEqual([]);
    expect(chart.description).toBe('A chart that says hello');
    const c = chart.tags[0]!.chart!;
    expect(c).toMatchObject({ ...CHART_META, version: '0.3.1', readme: README, values: VALUES });
    expect(c.archive.digest).toBe(pushed.get('charts/hello-chart:0.3.1')!.blobs[1]);
    expect(c.skipped).toBeUndefined();

    const wasm = repo('wasm/hello').tags[0]!;
    expect(wasm.artifact).toMatchObject({ artifactType: 'application/vnd.wasm.config.v0+json', digest: pushed.get('wasm/hello:1.0')!.digest });
    expect(wasm.artifact!.files).toEqual([{ title: 'hello.wasm', mediaType: 'application/wasm', size: 8, digest: pushed.get('wasm/hello:1.0')!.blobs[1] }]);
    const report = repo('oras/report').tags[0]!;
    expect(report.artifact).toMatchObject({ artifactType: 'application/vnd.example.report.v1+json', configMediaType: 'application/vnd.oci.empty.v1+json' });
    expect(report.artifact!.files.map((f) => [f.title, f.mediaType, f.size])).toEqual([
      ['report.txt', 'text/plain', 9],
      ['data.json', 'application/json', 12],
    ]);
    expect(repo('apps/web').tags[0]!.platforms.map((p) => p.platform)).toEqual(['linux/amd64']);
    expect(data.helmRepository).toEqual({ url: '/charts/', index: '/charts/index.yaml' });
  });

  it('a chart archive over the bound (a gzip bomb) is not read, and the build says so', () => {
    const bomb = repo('charts/bomb').tags[0]!.chart!;
    expect(bomb.readme).toBeUndefined();
    expect(bomb.skipped).toMatch(/unpacks to more than 32\.0 MiB/u);
    expect(buildOutput).toMatch(/charts\/bomb:0\.0\.1 \(Helm chart\): the chart archive unpacks to more than 32\.0 MiB/u);
  });

  it('a source read with credentials or from the build machine is not named in the data; a public registry source is', () => {
    expect(repo('local/web').tags[0]!.entry).toEqual({ index: 6, private: true, name: 'local/web', tags: ['1.0'] });
    expect(repo('private/web').tags[0]!.entry).toEqual({ index: 7, private: true, name: 'private/web', tags: ['1.0'] });
    expect(repo('apps/web').tags[0]!.entry).toMatchObject({ source: `${up.host}/apps/web:1.0`, private: false });
    const text = JSON.stringify(data);
    expect(text).not.toContain('private-layouts');
    expect(text).not.toContain(priv.host);
    expect(buildOutput).not.toContain('s3cret-pass');
  });
});

describe('pulled back through the site', () => {
  it('skopeo and containerd get each artifact byte for byte', async () => {
    const host = new URL(serve.url).host;
    for (const [ref, want] of pushed) {
      const copy = await skopeoCopy(`${host}/${ref}`);
      expect(copy.manifestDigest, ref).toBe(want.digest);
      for (const b of want.blobs) expect(copy.files, ref).toContain(b.slice(7));
      // containerd fetches without unpacking (it would not unpack a chart) and checks every digest.
      const ns = `art${crypto.randomBytes(4).toString('hex')}`;
      const base = ['--address', containerd.address, '--namespace', ns];
      await run('ctr', [...base, 'content', 'fetch', '--plain-http', `${host}/${ref}`], { timeoutMs: 60_000 });
      const content = (await run('ctr', [...base, 'content', 'ls', '-q'])).stdout.split('\n').map((s) => s.trim());
      for (const d of [want.digest, ...want.blobs]) expect(content, ref).toContain(d);
    }
  }, 240_000);
});

describe('the classic Helm repository', () => {
  it("index.yaml follows Helm's format, is served as YAML, and each url downloads the archive its digest names", async () => {
    const res = await fetch(`${serve.url}/charts/index.yaml`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/yaml');
    const index = parseYaml(await res.text()) as { apiVersion: string; generated: string; entries: Record<string, Array<Record<string, unknown>>> };
    expect(index.apiVersion).toBe('v1');
    expect(Number.isNaN(Date.parse(index.generated))).toBe(false);
    expect(Object.keys(index.entries).sort()).toEqual(['bomb', 'evil', 'hello-chart']);
    expect(index.entries['hello-chart']!.map((e) => e.version)).toEqual(['0.3.1', '0.2.0']);
    for (const [name, versions] of Object.entries(index.entries)) {
      for (const e of versions) {
        // Helm's ChartVersion: Chart.yaml's metadata plus urls, created, digest.
        expect(e, name).toMatchObject({ apiVersion: 'v2', name, version: expect.any(String), digest: expect.stringMatching(/^[a-f0-9]{64}$/u), created: expect.any(String) });
        expect(Number.isNaN(Date.parse(e.created as string))).toBe(false);
        const urls = e.urls as string[];
        expect(urls).toHaveLength(1);
        const archive = Buffer.from(await (await fetch(new URL(urls[0]!, `${serve.url}/charts/`))).arrayBuffer());
        expect(crypto.createHash('sha256').update(archive).digest('hex')).toBe(e.digest);
      }
    }
    expect(index.entries['hello-chart']![0]).toMatchObject({ appVersion: '1.16.0', description: 'A chart that says hello', keywords: ['hello', 'demo'], maintainers: CHART_META.maintainers, dependencies: CHART_META.dependencies, kubeVersion: '>=1.25.0-0' });
    // Every host file gives it the YAML type: Netlify's _headers (as the preview applies it above) …
    expect(await readFile(path.join(out, '_headers'), 'utf8')).toMatch(/^\/charts\/index\.yaml\n {2}Content-Type: application\/yaml$/mu);
    // … Cloudflare's rules, Apache's .htaccess in its folder …
    const paths = (JSON.parse(await readFile(path.join(out, PATHS_FILE), 'utf8')) as { paths: PublishedPath[] }).paths;
    const indexPath = paths.find((p) => p.kind === 'helm-index')!;
    expect(indexPath).toMatchObject({ urlPath: '/charts/index.yaml', file: 'charts/index.yaml', contentType: 'application/yaml' });
    expect(cloudflareMismatches(cloudflareRules(paths), paths)).toEqual([]);
    expect(renderApacheFiles(paths).find((f) => f.file === 'charts/.htaccess')?.text).toMatch(/^ForceType application\/yaml$/mu);
    // … and nginx, serving the built folder with its generated configuration.
    const nginxBin = ['/usr/sbin/nginx', 'nginx'].find((c) => hasCommand(c));
    if (!nginxBin) throw new Error('nginx is not installed: run scripts/install-test-deps.sh as root');
    const port = await freePort();
    const conf = path.join(dir, 'nginx.conf');
    await writeFile(conf, (await readFile(path.join(out, NGINX_STANDALONE_FILE), 'utf8')).replace(`listen ${NGINX_PORT};`, `listen 127.0.0.1:${port};`));
    const nginx = await spawnDaemon(nginxBin, ['-p', `${out}/`, '-c', conf, '-e', 'stderr', '-g', `daemon off; pid ${path.join(dir, 'nginx.pid')};`], {
      logFile: path.join(dir, 'nginx.log'),
      timeoutMs: 20_000,
      ready: async () => (await fetch(`http://127.0.0.1:${port}/v2/`)).status === 200,
    });
    try {
      const res = await fetch(`http://127.0.0.1:${port}/charts/index.yaml`);
      expect(res.status).toBe(200);
      for (const [name, value] of headersFor(indexPath)) expect(res.headers.get(name), name).toBe(value);
      expect(Buffer.byteLength(await res.text())).toBe(indexPath.size);
    } finally {
      await nginx.stop();
    }
  });
});

describe('the pages per kind, in Chromium', () => {
  async function open(url: string, opts: { width?: number; scheme?: 'light' | 'dark' } = {}): Promise<{ page: Page; problems: string[] }> {
    const context = await browser.newContext({ viewport: { width: opts.width ?? 1200, height: 900 }, colorScheme: opts.scheme ?? 'light' });
    const page = await context.newPage();
    const problems: string[] = [];
    const origin = new URL(serve.url).origin;
    page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`));
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('request', (req) => new URL(req.url()).origin !== origin && problems.push(`request to another origin: ${req.url()}`));
    const res = await page.goto(serve.url + url);
    expect(res?.status(), url).toBe(200);
    return { page, problems };
  }
  const commands = (page: Page) => page.locator('.cmd code').allInnerTexts();

  it('each kind with its own commands and facts; axe finds nothing; nothing from another origin', async () => {
    const host = new URL(serve.url).host;
    const axe = await readFile(AXE, 'utf8');
    // Every page is loaded in one tab; axe runs on one page of each kind (pages of a kind differ
    // only in data), the chart's in both schemes: axe costs seconds a page on this shared machine.
    const pages = [...new Set(['/images/', ...data.repositories.flatMap((r) => [r.url!, r.tags[0]!.url!])])];
    const audited = ['/images/', repo('charts/hello-chart').url!, repo('charts/evil').tags[0]!.url!, repo('wasm/hello').tags[0]!.url!, repo('oras/report').url!];
    for (const scheme of ['light', 'dark'] as const) {
      const { page, problems } = await open('/images/', { scheme });
      for (const url of scheme === 'light' ? pages : [repo('charts/hello-chart').url!]) {
        expect((await page.goto(serve.url + url))?.status(), url).toBe(200);
        if (audited.includes(url)) {
          await page.addScriptTag({ content: axe });
          const violations = await page.evaluate(async () => {
            const result = await (window as unknown as { axe: { run(o: unknown): Promise<{ violations: Array<{ id: string; nodes: Array<{ target: unknown }> }> }> } }).axe.run({ resultTypes: ['violations'] });
            return result.violations.map((v) => `${v.id}: ${JSON.stringify(v.nodes.map((n) => n.target))}`);
          });
          expect(violations, `${url} (${scheme})`).toEqual([]);
        }
        expect(problems, url).toEqual([]);
        expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned), url).toBeUndefined();
        // Nothing of a private source on any page: not the build machine's path, not the private registry.
        expect(await page.content(), url).not.toMatch(new RegExp(`private-layouts|${priv.host.replace(/[.]/gu, '\\.')}`, 'u'));
      }
      await page.context().close();
    }

    const chart = await open(repo('charts/hello-chart').url!);
    const chartCommands = await commands(chart.page);
    expect(chartCommands).toContain(`helm install --plain-http hello-chart oci://${host}/charts/hello-chart --version 0.3.1`);
    expect(chartCommands).toContain(`helm show values --plain-http oci://${host}/charts/hello-chart --version 0.3.1`);
    expect(chartCommands).toContain(`helm repo add registry ${serve.url.replace(/\/$/u, '')}/charts/`);
    expect(chartCommands.join('\n')).not.toMatch(/docker|podman|ctr /u);
    const text = await chart.page.locator('main').innerText();
    expect(text).toContain('App version');
    expect(text).toContain('Ada Lovelace');
    expect(text).toContain('>=1.25.0-0');
    expect(await chart.page.locator('.readme h3').first().innerText()).toBe('Hello chart');
    expect(await chart.page.locator('.readme table td').first().innerText()).toBe('replicaCount');
    expect((await chart.page.locator('pre.values').innerText()).trimEnd()).toBe(VALUES.trimEnd());
    expect(await chart.page.locator('.readme h3, .readme h4').allInnerTexts()).not.toContain('not this one');
    // Other versions are listed; the icon is a link, never an image.
    expect(await chart.page.locator('#tags ~ div table tbody tr').count()).toBe(2);
    expect(await chart.page.locator('img').count()).toBe(0);
    expect(await chart.page.locator('a[href="https://example.com/hello/icon.png"]').count()).toBe(1);
    // A version's own page links to the others.
    await chart.page.goto(serve.url + repo('charts/hello-chart').tags[0]!.url!);
    expect(await chart.page.locator('#versions + div a').allInnerTexts()).toEqual(['0.2.0']);
    await chart.page.context().close();

    const evil = await open(repo('charts/evil').url!);
    const readme = evil.page.locator('.readme');
    expect(await readme.locator('script, img, iframe').count()).toBe(0);
    expect(await readme.innerText()).toContain('<script>window.__pwned=1</script>');
    expect(await evil.page.locator('a[href^="javascript:"]').count()).toBe(0);
    expect(await evil.page.locator('pre.values').innerText()).toContain('<script>window.__pwned=4</script>');
    expect(evil.problems).toEqual([]);
    await evil.page.context().close();

    const bomb = await open(repo('charts/bomb').url!);
    expect(await bomb.page.locator('main').innerText()).toMatch(/Not shown: the chart archive unpacks to more than 32\.0 MiB/u);
    await bomb.page.context().close();

    const wasm = await open(repo('wasm/hello').tags[0]!.url!);
    expect(await commands(wasm.page)).toEqual(expect.arrayContaining([`oras pull --plain-http ${host}/wasm/hello:1.0`, `wkg oci pull ${host}/wasm/hello:1.0`]));
    expect(await wasm.page.locator('main').innerText()).toMatch(/hello\.wasm\s+application\/wasm\s+8 B/u);
    expect(await wasm.page.locator('#platforms').count()).toBe(0);
    await wasm.page.context().close();

    const report = await open(repo('oras/report').tags[0]!.url!);
    expect((await commands(report.page))[0]).toBe(`oras pull --plain-http ${host}/oras/report:v1`);
    const reportText = await report.page.locator('main').innerText();
    expect(reportText).toContain('application/vnd.example.report.v1+json');
    expect(reportText).toMatch(/report\.txt\s+text\/plain\s+9 B/u);
    await report.page.context().close();

    const image = await open(repo('apps/web').url!);
    expect((await commands(image.page))[0]).toBe(`docker pull ${host}/apps/web:1.0`);
    await image.page.context().close();
    const local = await open(repo('local/web').tags[0]!.url!);
    expect(await local.page.locator('main').innerText()).not.toContain('private-layouts');
    await local.page.context().close();
  }, 240_000);

  it('the catalog shows each kind and filters by it; at phone width nothing overflows', async () => {
    const { page, problems } = await open('/images/', { width: 375 });
    const rows = page.locator('tbody tr');
    expect(await rows.count()).toBe(8);
    expect(await page.locator('tr[data-kind="helm-chart"] td').first().innerText()).toBe('Helm chart');
    await page.getByLabel('Helm chart (3)').check();
    expect(await page.locator('tbody tr:visible').count()).toBe(3);
    expect(page.url()).toMatch(/\?kind=helm-chart$/u);
    await page.getByLabel('All (8)').check();
    expect(await page.locator('tbody tr:visible').count()).toBe(8);
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(375);
    expect(problems).toEqual([]);
    await page.context().close();
    // A chart page at phone width, README and values included.
    const chart = await open(repo('charts/hello-chart').url!, { width: 375 });
    expect(await chart.page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(375);
    await chart.page.context().close();
    // Its screenshot (docs/screenshots/chart.png with REGISTRISH_SCREENSHOTS=docs).
    const target = process.env.REGISTRISH_SCREENSHOTS === 'docs' ? path.join(REPO, 'docs/screenshots') : path.join(dir, 'shots');
    await mkdir(target, { recursive: true });
    const wide = await open(repo('charts/hello-chart').url!, { width: 1000 });
    await wide.page.screenshot({ path: path.join(target, 'chart.png'), fullPage: true });
    await wide.page.context().close();
  });
});

describe('classification from media types', () => {
  const m = (config: string, layers: string[], extra: Record<string, unknown> = {}) => ({ config: { mediaType: config, digest: '', size: 0 }, layers: layers.map((mediaType) => ({ mediaType, digest: '', size: 0 })), ...extra });
  it('tells each kind the way its tools push it', () => {
    expect(classifyManifest(m(MT.dockerConfig, [MT.dockerLayerGzip]))).toBe('image');
    expect(classifyManifest(m(MT.ociConfig, [MT.ociLayerGzip]))).toBe('image');
    expect(classifyManifest(m(HELM_CONFIG, [HELM_CHART, 'application/vnd.cncf.helm.chart.provenance.v1.prov']))).toBe('helm-chart');
    expect(classifyManifest(m('application/vnd.cncf.flux.config.v1+json', ['application/vnd.cncf.flux.content.v1.tar+gzip']))).toBe('flux');
    expect(classifyManifest(m('application/vnd.sylabs.sif.config.v1+json', ['application/vnd.sylabs.sif.layer.v1.sif']))).toBe('apptainer');
    expect(classifyManifest(m('application/vnd.wasm.config.v0+json', ['application/wasm']))).toBe('wasm');
    expect(classifyManifest(m('application/vnd.module.wasm.config.v1+json', ['application/vnd.module.wasm.content.layer.v1+wasm']))).toBe('wasm');
    // cosign writes its signatures over an image config; a referrer is an attachment whatever it carries.
    expect(classifyManifest(m(MT.ociConfig, ['application/vnd.dev.cosign.simplesigning.v1+json']))).toBe('attachment');
    expect(classifyManifest(m(EMPTY.mediaType, ['application/spdx+json'], { artifactType: 'application/spdx+json' }))).toBe('attachment');
    expect(classifyManifest(m(EMPTY.mediaType, ['text/plain'], { subject: { mediaType: MT.ociManifest, digest: 'sha256:x', size: 1 } }))).toBe('attachment');
    expect(classifyManifest(m(EMPTY.mediaType, ['text/plain'], { artifactType: 'application/vnd.example+json' }))).toBe('artifact');
    // An image config under another artifactType is that artifact, not a runnable image.
    expect(classifyManifest(m(MT.ociConfig, ['text/plain'], { artifactType: 'application/vnd.example+json' }))).toBe('artifact');
    expect(kindOfIndex(['wasm', 'wasm', 'attachment'])).toBe('wasm');
    expect(kindOfIndex(['image', 'attachment'])).toBe('image');
  });
});

describe('reading a chart archive, bounded', () => {
  it('skips, saying why: an archive over the bound, a README over its bound, bytes that are not a chart archive', async () => {
    const file = path.join(dir, 'chart.tgz');
    expect((await readChartFiles(file, MAX_CHART_ARCHIVE_BYTES + 1)).skipped).toMatch(/^the chart archive is 8\.0 MiB, more than the 8\.0 MiB read for pages$/u);
    await writeFile(file, gzip(makeTar([{ name: 'big/README.md', content: Buffer.alloc(600 * 1024, 'a') }, { name: 'big/values.yaml', content: 'a: 1\n' }])));
    expect(await readChartFiles(file, 1000)).toEqual({ skipped: 'big/README.md is 600.0 KiB, more than the 512.0 KiB shown', values: 'a: 1\n' });
    await writeFile(file, 'not gzip');
    expect((await readChartFiles(file, 8)).skipped).toMatch(/^the chart archive could not be read \(/u);
  });
});
