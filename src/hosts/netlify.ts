import path from 'node:path';
import { REDEPLOY } from '../check/problems.ts';
import type { PublishedPath } from '../model/published-path.ts';
import { headersFor } from '../publish/headers.ts';
import { RegistrishError } from '../util/errors.ts';
import { compareStrings } from '../util/format.ts';
import { mergeIntoSiteHeaders } from './headers-file.ts';
import type { Host, HostCheck } from './host.ts';

// Netlify `_headers` writer. Renders headersFor() for every published URL as one exact-path rule.
//
// Why exact paths and no wildcards of ours: Netlify applies every matching rule (the later one wins
// for the same header name, per @netlify/headers-parser and `netlify dev`), while Cloudflare Pages,
// which reads the same file format, comma-joins repeated headers across matching rules. Two rules
// setting Content-Type on one URL would give `application/json, application/vnd.oci…`, which no
// container client accepts. So every URL gets exactly one rule, and nothing else of ours matches it.
//
// Why `:` in digest paths is written literally (checked against @netlify/headers-parser 9.0.3,
// lib/line_parser.js and lib/for_regexp.js):
// - a line is a path line iff it starts with `/`, so `/v2/x/manifests/sha256:abc…` is never split at
//   its `:` as if it were a `Name: value` header line;
// - the path is split on `/` and a segment is a placeholder only when it *starts* with `:`
//   (`/:name/`); `sha256:abc…` is escaped and matched literally (case-insensitively, like everything);
// - percent-encoding it (`sha256%3Aabc…`) would be wrong: the rule would then require a literal
//   `%3A`, while clients (Docker, containerd, containers/image, crane) send the `:` unencoded.
// Netlify documents placeholders only as whole segments starting with `:`, and its CLI notes that
// production matching uses the same regex approach; the live CDN itself was not deployed to and
// checked here. Registry names and tags can never start a
// segment with `:` or contain `*`, and assertNetlifyPath() refuses such paths rather than letting a
// URL silently turn into a pattern.

/** Netlify refuses deploys with more files than this in one directory. */
export const NETLIFY_MAX_FILES_PER_DIR = 54_000;
/** Files above this size get a warning (Netlify is a site CDN, not a file host). */
export const NETLIFY_LARGE_FILE_BYTES = 10 * 1024 * 1024;

/** Why `urlPath` cannot be written as an exact Netlify rule path, or undefined when it can. */
export function netlifyPathProblem(urlPath: string): string | undefined {
  if (!urlPath.startsWith('/')) return 'it does not start with "/"';
  // Whitespace would be trimmed or split by the line parser; `*` is the splat; `%`, `?`, `#`
  // and `\` have no unambiguous meaning in a rule path. Registry names and tags never contain them.
  const bad = /[\s\u0000-\u001f\u007f*%?#\\]/u.exec(urlPath);
  if (bad) return `it contains ${JSON.stringify(bad[0])}, which Netlify rule paths cannot express literally`;
  if (urlPath.split('/').some((seg) => seg.startsWith(':'))) {
    return 'a segment starts with ":", which Netlify reads as a placeholder';
  }
  if (urlPath.includes('//')) return 'it contains an empty segment ("//"), which Netlify ignores when matching';
  return undefined;
}

function assertNetlifyPath(urlPath: string): void {
  const problem = netlifyPathProblem(urlPath);
  if (problem) {
    throw new RegistrishError(`cannot write a Netlify _headers rule for ${JSON.stringify(urlPath)}: ${problem}`, {
      hint: 'This is a bug in registrish (registry names and tags never need such characters); please report it.',
    });
  }
}

function assertHeaderText(urlPath: string, name: string, value: string): void {
  // A newline would start a new rule; an empty value is a parse error; `:` in a name would split it.
  if (!/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/u.test(name) || /[\r\n]/u.test(value) || value.trim() === '' || value !== value.trim()) {
    throw new RegistrishError(
      `cannot write header ${JSON.stringify(name)}: ${JSON.stringify(value)} for ${urlPath} into _headers`,
    );
  }
}

/**
 * The Netlify `_headers` text for `paths`: one exact-path rule per URL, sorted by URL,
 * carrying exactly headersFor(p). Throws on a URL that would not be read back literally,
 * or on one URL listed twice with different headers.
 */
export function renderNetlifyHeaders(paths: readonly PublishedPath[]): string {
  const byUrl = new Map<string, string>();
  for (const p of paths) {
    assertNetlifyPath(p.urlPath);
    const lines = [p.urlPath];
    for (const [name, value] of headersFor(p)) {
      assertHeaderText(p.urlPath, name, value);
      lines.push(`  ${name}: ${value}`);
    }
    const block = lines.join('\n');
    const previous = byUrl.get(p.urlPath);
    if (previous !== undefined && previous !== block) {
      throw new RegistrishError(`${p.urlPath} is published twice with different headers`, {
        hint: 'Two images.json entries publish the same repository and tag; give them different names or tags.',
      });
    }
    byUrl.set(p.urlPath, block);
  }
  const blocks = [...byUrl.keys()].sort(compareStrings).map((url) => byUrl.get(url)!);
  const head = [
    '# Generated by registrish: container registry headers, one exact rule per URL.',
    '# Do not edit: rewritten on every build. Rules added outside the registrish block are kept.',
  ].join('\n');
  return `${head}\n${blocks.map((b) => `\n${b}\n`).join('')}`;
}

/** Netlify matches `/A` and `/a/` with the same rule: case-insensitive, optional trailing slash. */
function netlifyPathKey(urlPath: string): string {
  return urlPath.toLowerCase().replace(/\/+$/u, '');
}

/** Things that would make a Netlify deploy fail or serve the wrong thing. */
export function checkNetlifyLimits(paths: readonly PublishedPath[]): HostCheck {
  const errors: string[] = [];
  const warnings: string[] = [];

  for (const p of paths) {
    const problem = netlifyPathProblem(p.urlPath);
    if (problem) errors.push(`${p.urlPath} cannot be expressed as a Netlify _headers rule: ${problem}`);
  }

  // Netlify matches header rules (and serves files) case-insensitively: two such URLs would both
  // pick up both rules, and one of them would get the other's Content-Type and digest.
  const seen = new Map<string, string>();
  for (const p of paths) {
    const key = netlifyPathKey(p.urlPath);
    const other = seen.get(key);
    if (other === undefined) seen.set(key, p.urlPath);
    else if (other !== p.urlPath) {
      errors.push(
        `${other} and ${p.urlPath} differ only in letter case (or a trailing slash); Netlify matches paths ` +
          'case-insensitively, so they cannot both be published. Rename one of the tags or repositories.',
      );
    }
  }

  const perDir = new Map<string, Set<string>>();
  for (const p of paths) {
    const dir = path.posix.dirname(p.file);
    let files = perDir.get(dir);
    if (!files) perDir.set(dir, (files = new Set()));
    files.add(p.file);
  }
  for (const [dir, files] of [...perDir].sort(([a], [b]) => compareStrings(a, b))) {
    if (files.size > NETLIFY_MAX_FILES_PER_DIR) {
      errors.push(
        `${dir}/ would hold ${files.size} files; Netlify refuses deploys with more than ` +
          `${NETLIFY_MAX_FILES_PER_DIR} files in one directory. Publish fewer tags or images in this repository.`,
      );
    }
  }

  const warned = new Set<string>();
  for (const p of [...paths].sort((a, b) => compareStrings(a.file, b.file))) {
    if (p.size > NETLIFY_LARGE_FILE_BYTES && !warned.has(p.file)) {
      warned.add(p.file);
      warnings.push(
        `${p.file} is ${(p.size / 1024 / 1024).toFixed(1)} MiB; Netlify's terms caution against serving ` +
          'large files from a site (bandwidth and acceptable use) — check your plan before deploying big layers.',
      );
    }
  }

  return { errors, warnings };
}

export const netlify: Host = {
  name: 'netlify',
  writer: {
    check: checkNetlifyLimits,
    async render(outDir, paths) {
      // A site's own `_headers` is kept: ours lives between markers inside it.
      const merged = await mergeIntoSiteHeaders(outDir, renderNetlifyHeaders(paths));
      return { files: [{ file: '_headers', text: merged.text }], warnings: merged.warnings };
    },
  },
  fixes: {
    'base-status': 'Check v2/index.html was deployed and no _redirects / netlify.toml rule matches /v2/.',
    status: `${REDEPLOY} Netlify allows at most 54,000 files per directory.`,
    'manifest-type': 'Deploy the generated _headers at the publish root together with the site (it sets the type of every manifest URL). `netlify dev` overwrites Content-Type: check the deployed site, not the dev proxy.',
    'type-params': 'Netlify sends the _headers value as written: look for another rule, an Edge Function or a proxy in front that adds the parameter.',
    'digest-header-missing': 'The generated _headers sets it: deploy it with the site.',
    'head-length': 'Serve the static file: a Function or Edge Function answering this path drops Content-Length on HEAD.',
    'length-wrong': `Turn off asset optimisation/post-processing for the site. ${REDEPLOY}`,
    'content-encoding': 'Remove any Content-Encoding from _headers for /v2/ and do not upload pre-compressed files under the blob names.',
    'missing-200': 'Remove the `/* /index.html 200` fallback from _redirects / netlify.toml, or put a `/v2/* /404.html 404` rule before it.',
  },
};
