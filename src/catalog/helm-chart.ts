import { createReadStream } from 'node:fs';
import { createGunzip } from 'node:zlib';
import { readTar } from '../sources/archive/tar.ts';
import { formatBytes } from '../util/format.ts';

// A chart's README and default values, read from the chart archive (a gzipped tar with the chart
// folder at the top, as `helm package` writes it) during the build: streamed, never extracted to
// disk, and bounded, since the archive comes from an upstream registry and could be a gzip bomb.

/** Chart archives larger than this are not read (Helm charts are kilobytes; the largest well-known ones ~1 MiB). */
export const MAX_CHART_ARCHIVE_BYTES = 8 * 1024 * 1024;
/** Uncompressed bytes read from one archive before giving up (Helm itself refuses charts over 100 MiB). */
export const MAX_CHART_UNPACKED_BYTES = 32 * 1024 * 1024;
/** README.md and values.yaml larger than this are not shown. */
export const MAX_CHART_FILE_BYTES = 512 * 1024;

export interface ChartFiles {
  readme?: string;
  values?: string;
  /** Why something was not read (the build says so too). */
  skipped?: string;
}

/** `mychart/README.md`, `mychart/values.yaml`: the chart's own files, not its subcharts'. */
const README = /^[^/]+\/readme(?:\.md|\.markdown|\.txt)?$/iu;
const VALUES = /^[^/]+\/values\.yaml$/u;

export async function readChartFiles(file: string, size: number): Promise<ChartFiles> {
  if (size > MAX_CHART_ARCHIVE_BYTES) {
    return { skipped: `the chart archive is ${formatBytes(size)}, more than the ${formatBytes(MAX_CHART_ARCHIVE_BYTES)} read for pages` };
  }
  const out: ChartFiles = {};
  const gunzip = createGunzip();
  let unpacked = 0;
  let overBound = false;
  const stream = createReadStream(file).pipe(gunzip);
  // Counted as it is inflated: a bomb stops here, long before it fills memory.
  async function* bounded(): AsyncGenerator<Buffer> {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      unpacked += chunk.length;
      if (unpacked > MAX_CHART_UNPACKED_BYTES) {
        overBound = true;
        return;
      }
      yield chunk;
    }
  }
  try {
    for await (const member of readTar(bounded())) {
      const want = member.type === 'file' ? (README.test(member.name) && out.readme === undefined ? 'readme' : VALUES.test(member.name) ? 'values' : undefined) : undefined;
      if (!want) continue;
      if (member.size > MAX_CHART_FILE_BYTES) {
        out.skipped = `${member.name} is ${formatBytes(member.size)}, more than the ${formatBytes(MAX_CHART_FILE_BYTES)} shown`;
        continue;
      }
      const parts: Buffer[] = [];
      for await (const c of member.body()) parts.push(c);
      out[want] = Buffer.concat(parts).toString('utf8');
      if (out.readme !== undefined && out.values !== undefined) break;
    }
  } catch (err) {
    if (overBound) return { skipped: `the chart archive unpacks to more than ${formatBytes(MAX_CHART_UNPACKED_BYTES)} (a gzip bomb?); README and values not read` };
    return { skipped: `the chart archive could not be read (${(err as Error).message})` };
  } finally {
    stream.destroy();
  }
  // The tar reader may also take the cut-off stream as an end rather than an error.
  if (overBound) return { skipped: `the chart archive unpacks to more than ${formatBytes(MAX_CHART_UNPACKED_BYTES)} (a gzip bomb?); README and values not read` };
  return out;
}
