import path from 'node:path';
import { intOption, parseCommandArgs, UsageError, type CliIO } from '../cli/args.ts';
import { loadConfig } from '../config/config.ts';
import { HOSTS, hostNamed } from '../hosts/index.ts';
import { BREAKS, rowStatus } from './problems.ts';
import { registryOrigin } from './origin.ts';
import { fixFor, formatReport } from './report.ts';
import { runCheck, type CheckOptions } from './run.ts';

// `registrish check` on the command line: arguments in, the report out (text or --json), exit code
// 1 when anything failed.

const HOST_NAMES = HOSTS.map((h) => h.name);

export const CHECK_USAGE = `Usage: registrish check <url> [--images images.json] [--quick] [--host <host>] [--json]

Checks a deployed registry the way the strictest pull clients read it: GET /v2/; every tag's
manifest by tag and by digest (HEAD and GET: status, exact Content-Type, Content-Length,
Docker-Content-Digest, body digest), the child manifests of every index, every blob (no
Content-Encoding, bytes hash to the digest), and that missing paths answer 404. Each failure
names the clients it breaks and how to fix it. Exit code 1 when anything fails.

Options:
      --images <file>   check the names and tags of this images.json (default: discover them
                        through /v2/_catalog and tags/list)
      --quick           HEAD every blob but download only a sample (smallest config and layer)
      --host <host>     tailor the fixes: ${HOST_NAMES.join(', ')}
      --concurrency <n> requests in flight (default 8)
      --json            machine-readable report on stdout
  -h, --help            show this help`;

export async function checkCommand(argv: string[], io: CliIO): Promise<number> {
  const parsed = parseCommandArgs(argv, {
    images: { type: 'string' },
    quick: { type: 'boolean' },
    host: { type: 'string' },
    concurrency: { type: 'string' },
    json: { type: 'boolean' },
  });
  const { values, positionals } = parsed;
  if (values.help) {
    io.stdout(`${CHECK_USAGE}\n`);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError(positionals.length ? `expected one URL, got ${positionals.length}` : 'missing the registry URL');
  const url = registryOrigin(positionals[0]!);
  const host = values.host;
  if (host !== undefined && !hostNamed(host)) throw new UsageError(`--host must be one of ${HOST_NAMES.join(', ')}, got "${host}"`);
  const concurrency = intOption('--concurrency', values.concurrency ?? '8', 1, 64);

  let images: CheckOptions['images'];
  if (values.images !== undefined) {
    const config = await loadConfig(values.images);
    // Several entries may publish to one name (mirrored tags): merge their tags.
    // Tags chosen by rules are only known to the build: read those from the registry's tags/list.
    const byName = new Map<string, { tags?: string[]; attachments: boolean }>();
    for (const spec of config.images) {
      const seen = byName.get(spec.name) ?? { tags: [], attachments: false };
      byName.set(spec.name, { tags: seen.tags && [...seen.tags, ...spec.tags], attachments: seen.attachments || spec.attachments === true });
    }
    for (const sel of config.selections) byName.set(sel.name, { attachments: (byName.get(sel.name)?.attachments ?? false) || sel.attachments === true });
    images = [...byName].map(([name, r]) => ({ name, ...(r.tags ? { tags: [...new Set(r.tags)] } : {}), attachments: r.attachments }));
  }

  const report = await runCheck({ url, images, quick: values.quick ?? false, concurrency, host });
  if (values.json) {
    const rows = report.rows.map((r) => ({
      ...r,
      status: rowStatus(r),
      problems: r.problems.map((p) => ({ ...p, breaks: BREAKS[p.kind], fix: fixFor(p.kind, host) })),
    }));
    io.stdout(`${JSON.stringify({ ...report, rows }, null, 2)}\n`);
  } else {
    const rel = path.relative(process.cwd(), path.resolve(values.images ?? ''));
    const from =
      report.source === 'images'
        ? `tags from ${rel && !rel.startsWith('..') ? rel : path.resolve(values.images!)}`
        : 'tags discovered through /v2/_catalog and tags/list (pass --images images.json to check exactly what you publish)';
    io.stdout(`registrish check ${url}\n${from}\n${formatReport(report, host)}`);
  }
  return report.failed ? 1 : 0;
}
