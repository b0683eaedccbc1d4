import { readFile, writeFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { BuildSummary } from '../src/build.ts';
import { testBuild } from './harness/build.ts';
import { parseConfigText } from '../src/config/config.ts';
import { ConfigError } from '../src/config/config.ts';
import { selectionLine } from '../src/resolve/selections.ts';
import { selectTags } from '../src/resolve/tag-rules.ts';
import { RegistryClient } from '../src/sources/registry/client.ts';
import { startPreviewServer, type PreviewServer } from '../src/serve/server.ts';
import { formatError } from '../src/util/errors.ts';
import { skopeoCopy } from './harness/clients.ts';
import { buildManifest, makeLayer, pushImage, tagManifest, type BuiltImage } from './harness/images.ts';
import { startFaultProxy } from './harness/fault-proxy.ts';
import { makeTempDir, removeDir } from './harness/procs.ts';
import { startRegistry, type UpstreamRegistry } from './harness/upstream.ts';

// Tag rules: which of the upstream's tags an entry publishes, decided at build time from its
// tags/list (every page). Checked on the rules themselves, on images.json, and end to end against
// the real upstream: what the static registry's tags/list then lists, and what a client pulls.

const TAGS = ['1.0.0', '1.2.0', '1.2.3', '1.10.0', '2.0.0-rc.1', '2.0.0', 'v3.1.0', 'latest', 'nightly', '1.2.3-alpine'];
const rules = (config: unknown) => {
  const c = parseConfigText(JSON.stringify({ images: [{ source: 'example.com/app', tags: config }] }), '/tmp/images.json', { env: {} });
  return c.selections[0]!.rules;
};
const select = (config: unknown) => selectTags(TAGS, rules(config));

describe('the rules', () => {
  it('allow and deny match the whole tag', () => {
    expect(select({ allow: ['1\\.2\\..*'] }).kept).toEqual(['1.2.0', '1.2.3', '1.2.3-alpine']);
    // Anchored: "1.2" alone matches nothing, "2" does not keep "1.2.0".
    expect(select({ allow: ['2', '1\\.2'] }).kept).toEqual([]);
    expect(select({ deny: ['.*-alpine', 'nightly', 'latest'] }).kept).toEqual(['1.0.0', '1.10.0', '1.2.0', '1.2.3', '2.0.0', '2.0.0-rc.1', 'v3.1.0']);
    expect(select({ allow: ['1\\..*'], deny: ['.*-alpine'] }).kept).toEqual(['1.0.0', '1.10.0', '1.2.0', '1.2.3']);
  });

  it('semver is a range in npm syntax; a leading v counts; the rest is dropped and counted', () => {
    expect(select({ semver: '>=1.2 <2' })).toEqual({ kept: ['1.10.0', '1.2.3', '1.2.0'], notSemver: 2 });
    expect(select({ semver: '>=3' }).kept).toEqual(['v3.1.0']);
    // Pre-releases only when the range names one, as npm does.
    expect(select({ semver: '>=1.10 <=2.0.0' }).kept).toEqual(['2.0.0', '1.10.0']);
    expect(select({ semver: '>=2.0.0-rc.0 <2.0.1' }).kept).toEqual(['2.0.0', '2.0.0-rc.1']);
  });

  it('newest keeps the N highest by precedence (pre-releases below their release); non-semver dropped and counted', () => {
    expect(select({ newest: 3 })).toEqual({ kept: ['v3.1.0', '2.0.0', '2.0.0-rc.1'], notSemver: 2 });
    expect(select({ newest: 2, deny: ['v.*'] }).kept).toEqual(['2.0.0', '2.0.0-rc.1']);
    // 1.10.0 is above 1.2.3 (numbers, not strings).
    expect(select({ semver: '1.x', newest: 2 }).kept).toEqual(['1.10.0', '1.2.3']);
    expect(select({ allow: ['1\\.2\\..*'], semver: '^1.2', newest: 1 }).kept).toEqual(['1.2.3']);
  });

  it('images.json names the field of every mistake', () => {
    const problems = (tags: unknown, source = 'example.com/app'): readonly string[] => {
      try {
        parseConfigText(JSON.stringify({ images: ['a', 'b', { source, tags }] }), path.join(process.cwd(), 'images.json'), { env: {} });
      } catch (e) {
        if (e instanceof ConfigError) return e.problems;
        throw e;
      }
      return [];
    };
    expect(problems({ semver: 'not a range' })).toEqual(['images.json: images[2].tags.semver: "not a range" is not a version range in npm\'s syntax, e.g. ">=1.26 <2" or "^3.1"']);
    expect(problems({ allow: ['(unclosed'] })[0]).toMatch(/^images\.json: images\[2\]\.tags\.allow\[0\]: "\(unclosed" is not a valid regular expression: /u);
    expect(problems({ deny: 'x' })).toEqual(['images.json: images[2].tags.deny: expected a non-empty list of regular expressions, e.g. ["1\\\\.2[67]\\\\..*"], got a string ("x")']);
    expect(problems({ newest: 0 })).toEqual(['images.json: images[2].tags.newest: expected a whole number of tags to keep (1 to 10000), got a number (0)']);
    expect(problems({ newst: 3 })).toEqual([
      'images.json: images[2].tags: unknown key "newst" — did you mean "newest"?',
      'images.json: images[2].tags: the rules select nothing: give at least one of "allow", "deny", "semver", "newest", or list the tags (["1.0", "latest"])',
    ]);
    expect(problems({ newest: 3 }, 'example.com/app:1.0')).toEqual([
      'images.json: images[2].tags: tag rules select among the repository\'s tags, but "source" names the tag "1.0": remove it from "source"',
    ]);
  });
});

let dir: string;
let up: UpstreamRegistry;
const images = new Map<string, BuiltImage>();

/** Pushes `tag` as its own small image (each tag a different digest, as releases are). */
async function push(tag: string): Promise<void> {
  const m = buildManifest({ format: 'oci', platform: { os: 'linux', architecture: 'amd64' }, layers: [makeLayer([{ name: 'v', content: `rules/app ${tag}\n` }])] });
  await pushImage(up.url, 'rules/app', tag, m);
  images.set(tag, m);
}

async function build(tags: unknown, out: string, extra: Record<string, unknown> = {}): Promise<{ summary: BuildSummary; list: string[] }> {
  const file = path.join(dir, 'images.json');
  await writeFile(file, JSON.stringify({ images: [{ source: `${up.host}/rules/app`, tags, ...extra }] }));
  const { summary } = await testBuild(file, out, path.join(dir, 'cache'), { http: { maxRetries: 0 } });
  const list = JSON.parse(await readFile(path.join(out, 'v2/rules/app/tags/list'), 'utf8')).tags as string[];
  return { summary, list };
}

beforeAll(async () => {
  dir = makeTempDir('rsh-rules-');
  up = await startRegistry({ storageDir: path.join(dir, 'storage') });
  for (const t of TAGS) await push(t);
}, 120_000);
afterAll(async () => {
  await up?.stop();
  removeDir(dir);
});

describe('against the real upstream', () => {
  it('publishes exactly what the rules keep, and a client pulls it', async () => {
    const out = path.join(dir, 'out-a');
    const { summary, list } = await build({ allow: ['.*'], deny: ['.*-alpine'], semver: '>=1.2 <3', newest: 3 }, out);
    expect(list).toEqual(['1.10.0', '1.2.3', '2.0.0']);
    expect(summary.selections[0]).toMatchObject({ listed: TAGS.length, kept: ['2.0.0', '1.10.0', '1.2.3'], notSemver: 2 });
    expect(selectionLine(summary.selections[0]!)).toBe(
      `images[0] (${up.host}/rules/app → rules/app): 10 tags listed, 3 kept (2.0.0, 1.10.0, 1.2.3); 2 not semver, dropped`,
    );
    const serve: PreviewServer = await startPreviewServer({ dir: out, port: 0 });
    try {
      const pulled = await skopeoCopy(`${serve.url.replace('http://', '')}/rules/app:1.10.0`);
      expect(pulled.manifestDigest).toBe(images.get('1.10.0')!.digest);
    } finally {
      await serve.close();
    }
  });

  it('says what arrived and what left since the last build; what left leaves the registry, blobs included', async () => {
    const out = path.join(dir, 'out-b');
    const first = await build({ semver: '^1', newest: 2 }, out);
    expect(first.list).toEqual(['1.10.0', '1.2.3']);
    // Built again unchanged: nothing arrived or left.
    const again = await build({ semver: '^1', newest: 2 }, out);
    expect(selectionLine(again.summary.selections[0]!)).toMatch(/no change since the last build$/u);
    await push('1.11.0');
    const moved = await build({ semver: '^1', newest: 2 }, out);
    expect(moved.list).toEqual(['1.10.0', '1.11.0']);
    expect(moved.summary.selections[0]).toMatchObject({ added: ['1.11.0'], dropped: ['1.2.3'] });
    expect(selectionLine(moved.summary.selections[0]!)).toMatch(/new: 1\.11\.0; gone: 1\.2\.3$/u);
    const gone = images.get('1.2.3')!;
    await expect(readFile(path.join(out, 'v2/rules/app/manifests/1.2.3'))).rejects.toThrow(/ENOENT/u);
    await expect(readFile(path.join(out, `v2/rules/app/manifests/${gone.digest}`))).rejects.toThrow(/ENOENT/u);
    for (const layer of gone.layerDigests!) await expect(readFile(path.join(out, `v2/rules/app/blobs/${layer}`))).rejects.toThrow(/ENOENT/u);
  });

  it('a rule that keeps no tag is an error naming the entry, and the output is left as it was', async () => {
    const out = path.join(dir, 'out-b');
    const before = await readFile(path.join(out, 'v2/rules/app/tags/list'), 'utf8');
    const err = await build({ semver: '>=9' }, out).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(formatError(err)).toContain(`images[0] (${up.host}/rules/app → rules/app): the tag rules (semver >=9) keep none of the 11 tags listed`);
    expect(formatError(err)).toContain('Tags there include "1.0.0"');
    expect(await readFile(path.join(out, 'v2/rules/app/tags/list'), 'utf8')).toBe(before);
  });

  it('a warm rebuild of an entry with 500 upstream tags costs one tags/list walk and one HEAD per kept tag', async () => {
    const m = images.get('1.0.0')!;
    await pushImage(up.url, 'many/app', '1.0.0', m);
    for (let i = 1; i < 500; i++) await tagManifest(up.url, 'many/app', `1.0.${i}`, m.bytes, m.mediaType);
    const proxy = await startFaultProxy({ target: up.url });
    try {
      const file = path.join(dir, 'many.json');
      await writeFile(file, JSON.stringify({ images: [{ source: `${proxy.host}/many/app`, tags: { semver: '>=1.0.400', newest: 10 } }] }));
      const run = async () => (await testBuild(file, path.join(dir, 'out-many'), path.join(dir, 'cache'), { imageConcurrency: 8 })).summary;
      const cold = await run();
      expect(cold.selections[0]).toMatchObject({ listed: 500, kept: Array.from({ length: 10 }, (_, i) => `1.0.${499 - i}`) });
      proxy.reset();
      await run();
      const requests = proxy.log.map((l) => l.replace(/ → .*$/u, '').replace(/[0-9.]+$/u, ''));
      expect(requests.filter((r) => r.startsWith('GET /v2/many/app/tags/list'))).toHaveLength(1);
      expect(requests.filter((r) => r.startsWith('HEAD /v2/many/app/manifests/'))).toHaveLength(10);
      expect(requests).toHaveLength(11);
    } finally {
      await proxy.close();
    }
  }, 120_000);

  it('reads every page of tags/list from the real registry (n=2)', async () => {
    const client = new RegistryClient({ registry: up.host, apiHost: up.host, insecure: true });
    try {
      expect((await client.listTags('rules/app', { pageSize: 2 })).sort()).toEqual([...images.keys()].sort());
      expect(await client.listTags('many/app', { pageSize: 7 })).toHaveLength(500);
    } finally {
      await client.close();
    }
  });
});

describe('tags/list pages from a server that pages', () => {
  let server: http.Server;
  let host: string;
  /** path → what to answer: tags and the Link target, if any. */
  const pages = new Map<string, { tags: string[]; next?: string }>();
  beforeAll(async () => {
    server = http.createServer((req, res) => {
      const page = pages.get(req.url ?? '');
      if (req.url === '/v2/') return void res.writeHead(200).end('{}');
      if (!page) return void res.writeHead(404).end();
      res.writeHead(200, { 'content-type': 'application/json', ...(page.next ? { link: `<${page.next}>; rel="next"` } : {}) });
      res.end(JSON.stringify({ name: 'x/y', tags: page.tags }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    host = `127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));
  const list = async (maxPages?: number) => {
    const client = new RegistryClient({ registry: host, apiHost: host, insecure: true, maxRetries: 0 });
    try {
      return await client.listTags('x/y', { pageSize: 1, maxPages });
    } finally {
      await client.close();
    }
  };

  it('follows rel="next" to the end', async () => {
    pages.clear();
    pages.set('/v2/x/y/tags/list?n=1', { tags: ['a'], next: '/v2/x/y/tags/list?n=1&last=a' });
    pages.set('/v2/x/y/tags/list?n=1&last=a', { tags: ['b'], next: '/v2/x/y/tags/list?n=1&last=b' });
    pages.set('/v2/x/y/tags/list?n=1&last=b', { tags: ['c', 'not a tag!'] });
    expect(await list()).toEqual(['a', 'b', 'c']);
  });

  it('a loop, another origin, or too many pages is a clear error', async () => {
    pages.clear();
    pages.set('/v2/x/y/tags/list?n=1', { tags: ['a'], next: '/v2/x/y/tags/list?n=1&last=a' });
    pages.set('/v2/x/y/tags/list?n=1&last=a', { tags: ['b'], next: '/v2/x/y/tags/list?n=1' });
    await expect(list()).rejects.toThrow(/tags\/list: the registry's Link header loops back to http:\/\/127\.0\.0\.1:\d+\/v2\/x\/y\/tags\/list\?n=1/u);
    pages.set('/v2/x/y/tags/list?n=1&last=a', { tags: ['b'], next: 'http://evil.example/v2/x/y/tags/list' });
    await expect(list()).rejects.toThrow(/points to another origin \(http:\/\/evil\.example\//u);
    for (let i = 0; i < 5; i++) pages.set(i === 0 ? '/v2/x/y/tags/list?n=1' : `/p${i}`, { tags: [`t${i}`], next: `/p${i + 1}` });
    await expect(list(3)).rejects.toThrow(/tags\/list: more than 3 pages; refusing to read on/u);
  });
});
