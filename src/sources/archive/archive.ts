import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { createGunzip, type Gunzip } from 'node:zlib';
import { MAX_MANIFEST_BYTES } from '../../model/media-types.ts';
import { IntegrityError, RegistrishError } from '../../util/errors.ts';
import type { SourceContext } from '../source.ts';
import { formatBytes, quote } from '../../util/format.ts';
import { readTar, TarFormatError, type TarHeader, type TarMember } from './tar.ts';

// One image archive file (what `docker save`, `podman save` and `skopeo copy … docker-archive:` or
// `oci-archive:` write), read without extracting it. One streaming pass (`TarArchive.scan`) lists
// every member, hashes every regular file, keeps the small JSON documents in memory and refuses
// hostile archives; a member's bytes are then served from that index: a byte range of the file
// when the archive is uncompressed, a new pass through the gzip stream when it is not (gzip cannot
// seek). Memory never holds more than a chunk of a layer, whatever the archive's size.

/** A JSON member (manifest.json, index.json, a manifest or an image config) larger than this is refused. */
export const MAX_JSON_BYTES = MAX_MANIFEST_BYTES;
/** All JSON-looking members kept in memory together; real archives hold a few hundred KiB. */
const MAX_JSON_TOTAL = 64 * 1024 * 1024;
/** Members listed in memory; docker save writes about four per layer, so this is thousands of images. */
const MAX_MEMBERS = 100_000;
/**
 * Bytes a gzip stream may inflate to per byte it holds (deflate's own maximum is about 1,032):
 * image data compresses 2–10×, a decompression bomb ~1,000× (or far more, nested). Settable with
 * REGISTRISH_MAX_INFLATE_RATIO for an archive that really holds that much emptiness.
 */
export const DEFAULT_INFLATE_RATIO = 100;
/** Whatever the ratio, this much may always be inflated (a small archive of text compresses well). */
const INFLATE_FLOOR = 256 * 1024 * 1024;

/** Most bytes `compressed` bytes of gzip may inflate to. */
export function inflateLimit(compressed: number, ratio = DEFAULT_INFLATE_RATIO): number {
  return Math.max(INFLATE_FLOOR, compressed * ratio);
}

/** The ratio in REGISTRISH_MAX_INFLATE_RATIO, or the default; a RegistrishError for a value that is not a number ≥ 1. */
export function inflateRatio(env: NodeJS.ProcessEnv): number {
  const text = env.REGISTRISH_MAX_INFLATE_RATIO;
  if (text === undefined || text === '') return DEFAULT_INFLATE_RATIO;
  const n = Number(text);
  if (!Number.isFinite(n) || n < 1) throw new RegistrishError(`REGISTRISH_MAX_INFLATE_RATIO must be a number ≥ 1, not ${quote(text)}`);
  return n;
}

const BOMB_HINT =
  'A gzip stream that inflates this far is refused as a decompression bomb. If the archive really holds that much, ' +
  'decompress it yourself first (gunzip it: an uncompressed archive is read in place, without this limit), or raise ' +
  `REGISTRISH_MAX_INFLATE_RATIO (default ${DEFAULT_INFLATE_RATIO}).`;

/** For a gzip layer inside the archive (its diff_id is the hash of what it inflates to). */
export const LAYER_BOMB_HINT =
  'A gzip layer that inflates this far is refused as a decompression bomb. If the image really holds that much, raise ' +
  `REGISTRISH_MAX_INFLATE_RATIO (default ${DEFAULT_INFLATE_RATIO}) for this build.`;

export type Compression = 'none' | 'gzip' | 'zstd';

/** A member as the scan saw it; `name` is normalized (no `./`, no trailing `/`). */
export interface ArchiveMember extends TarHeader {
  /** Regular files: sha256 of the bytes. */
  digest?: string;
  /** Regular files: what the first bytes say. */
  compression?: Compression;
  /** With `inflate`: sha256 of the decompressed bytes of a gzip member (or why it could not be read). */
  inflated?: { digest: string } | { error: string; bomb?: boolean };
  /** Small members that look like JSON (start with `{` or `[`). */
  json?: Buffer;
}

export interface ScanOptions {
  /** Also hash what gzip members decompress to (a docker archive's compressed layers, checked against diff_ids). */
  inflate?: boolean;
  /** Bytes of gzip may inflate to this many times their size (DEFAULT_INFLATE_RATIO; see inflateLimit). */
  inflateRatio?: number;
}

/** What the `source` syntax of every archive kind shares (see parseArchiveSource). */
export interface ArchiveSourceText {
  /** Absolute path of the archive. */
  file: string;
  /** What follows the path's `:`, when there is one. */
  rest?: string;
  /** Throws the kind's "not a valid reference" message. */
  fail: (why: string) => never;
  /** The archive's file name without .tar/.tar.gz/.tgz: the repository name when nothing else gives one. */
  defaultName: string;
  defaultNameFrom: string;
}

/**
 * `PREFIX<path>[:<rest>]`, split at the first `:` after the prefix as skopeo splits its archive
 * transports (so a path cannot contain `:`); the path is relative to images.json's folder.
 */
export function parseArchiveSource(original: string, prefix: string, syntax: string, baseDir: string): ArchiveSourceText {
  const fail = (why: string): never => {
    throw new RegistrishError(`${quote(original)} is not a valid ${prefix.slice(0, -1)} reference: ${why} (${syntax})`);
  };
  const body = original.slice(prefix.length);
  const colon = body.indexOf(':');
  const written = colon < 0 ? body : body.slice(0, colon);
  if (written === '') fail('the archive path is empty');
  if (/[\0-\x1f]/u.test(written)) fail('the archive path contains a control character');
  const file = path.resolve(baseDir, written);
  const defaultName = path.basename(file).replace(/\.(?:tar\.gz|tgz|tar)$/iu, '');
  const out: ArchiveSourceText = { file, fail, defaultName, defaultNameFrom: `the archive's file name ${quote(defaultName)}` };
  if (colon >= 0) out.rest = body.slice(colon + 1);
  return out;
}

/**
 * One parsed archive per build and key, read on first use (never at open: a build that fails
 * before needing it must not leave a scan running). Each caller gets its own copy of a failure:
 * the resolve stage prefixes every error with its images.json entry.
 */
export function sharedArchive<T>(ctx: SourceContext, key: string, load: () => Promise<T>): () => Promise<T> {
  const memo = ctx.shared(key, () => {
    let loading: Promise<T> | undefined;
    return () => (loading ??= load());
  });
  return () =>
    memo().catch((err: unknown) => {
      if (err instanceof RegistrishError) {
        const Kind = err.constructor as typeof RegistrishError;
        throw new Kind(err.message, { cause: err.cause, hint: err.hint });
      }
      throw err;
    });
}

export class TarArchive {
  private constructor(
    /** Absolute path of the archive. */
    readonly file: string,
    /** `docker-archive:/abs/app.tar`: how every message names the archive. */
    readonly label: string,
    readonly gzip: boolean,
    readonly members: ReadonlyMap<string, ArchiveMember>,
    /** Bytes the gzip stream may inflate to (Infinity for a plain archive). */
    private readonly inflateLimit: number,
  ) {}

  /** Reads the whole archive once (see the file comment). Throws a RegistrishError naming the archive and member. */
  static async scan(file: string, label: string, options: ScanOptions = {}): Promise<TarArchive> {
    const gzip = await sniffGzip(file, label);
    const ratio = options.inflateRatio ?? DEFAULT_INFLATE_RATIO;
    const limit = gzip ? inflateLimit((await stat(file)).size, ratio) : Infinity;
    const members = new Map<string, ArchiveMember>();
    const fail = (name: string, why: string, Kind = RegistrishError): never => {
      throw new Kind(`${label}: member ${quote(name)} ${why}`);
    };
    let jsonTotal = 0;
    let last: string | undefined;
    try {
      for await (const entry of readTar(readChunks(file, gzip, limit, label))) {
        last = entry.name;
        const name = normalizeMemberName(entry.name, (why) => fail(entry.name, why));
        if (name === '' && entry.type === 'directory') continue; // the archive's own root, "./"
        if (name === '') fail(entry.name, 'has an empty name');
        if (members.has(name)) fail(entry.name, 'appears twice in the archive (which one is meant?)');
        if (members.size >= MAX_MEMBERS) throw new RegistrishError(`${label}: the archive has more than ${MAX_MEMBERS} members (at member ${quote(name)})`);
        const member: ArchiveMember = {
          name,
          type: entry.type,
          typeflag: entry.typeflag,
          size: entry.size,
          linkName: entry.linkName,
          dataOffset: entry.dataOffset,
        };
        if (entry.type === 'file') {
          await digestMember(entry, member, options.inflate === true, ratio);
          if (member.json) {
            jsonTotal += member.json.length;
            if (jsonTotal > MAX_JSON_TOTAL) {
              throw new RegistrishError(`${label}: the archive holds more than ${formatBytes(MAX_JSON_TOTAL)} of JSON documents (at member ${quote(name)})`);
            }
          }
          // A blob's name is its digest (OCI layouts, docker save ≥ 25): a member that is not what its name says is damaged or forged.
          const named = /^blobs\/sha256\/([a-f0-9]{64})$/u.exec(name);
          if (named && member.digest !== `sha256:${named[1]}`) {
            fail(name, `hashes to ${member.digest}, not to the digest its name gives`, IntegrityError);
          }
        }
        members.set(name, member);
      }
    } catch (err) {
      throw archiveError(err, label, last);
    }
    return new TarArchive(file, label, gzip, members, limit);
  }

  /** An archive as an earlier scan of the same, unchanged file saw it (scan-index.ts). */
  static async restore(file: string, label: string, gzip: boolean, members: Map<string, ArchiveMember>, options: ScanOptions): Promise<TarArchive> {
    const limit = gzip ? inflateLimit((await stat(file)).size, options.inflateRatio ?? DEFAULT_INFLATE_RATIO) : Infinity;
    return new TarArchive(file, label, gzip, members, limit);
  }

  /** A member by name (normalized as in the archive), or undefined. */
  member(name: string): ArchiveMember | undefined {
    return this.members.get(name);
  }

  /**
   * The regular file `name` stands for, where `neededBy` (e.g. `manifest.json`) names it. A symbolic
   * link is followed one level, inside the archive only (docker save writes one when two images
   * share a layer); anything else that is not a regular file is refused.
   */
  regularFile(name: string, neededBy: string): ArchiveMember {
    const normalized = normalizeMemberName(name, (why) => this.fail(name, `(named by ${neededBy}) ${why}`));
    const member = this.members.get(normalized);
    if (!member) throw new RegistrishError(`${this.label}: ${neededBy} names member ${quote(name)}, which is not in the archive`);
    if (member.type === 'file') return member;
    if (member.type === 'symlink') {
      const target = member.linkName;
      if (target.startsWith('/')) this.fail(member.name, `is a symbolic link to the absolute path ${quote(target)}; only links inside the archive are followed`);
      const joined = path.posix.normalize(path.posix.join(path.posix.dirname(member.name), target));
      if (joined === '..' || joined.startsWith('../')) this.fail(member.name, `is a symbolic link out of the archive (${quote(target)})`);
      const resolved = this.members.get(joined);
      if (!resolved) this.fail(member.name, `is a symbolic link to ${quote(joined)}, which is not in the archive`);
      if (resolved.type !== 'file') this.fail(member.name, `is a symbolic link to ${quote(joined)}, which is ${describeType(resolved)}; only one link is followed, to a regular file`);
      return resolved;
    }
    return this.fail(member.name, `is ${describeType(member)}, where ${neededBy} needs a regular file${member.type === 'hardlink' ? ' (hard links are refused)' : ''}`);
  }

  /** The bytes of a JSON member, refusing one over the cap or one that does not look like JSON. */
  jsonBytes(member: ArchiveMember): Buffer {
    if (member.size > MAX_JSON_BYTES) {
      this.fail(member.name, `is ${formatBytes(member.size)}, over the ${formatBytes(MAX_JSON_BYTES)} limit for a JSON document`);
    }
    if (!member.json) this.fail(member.name, 'is not a JSON document');
    return member.json;
  }

  /** A JSON member (at most MAX_JSON_BYTES), parsed; a message naming it when it is not valid JSON. */
  parseJson(member: ArchiveMember): unknown {
    const bytes = this.jsonBytes(member);
    try {
      return JSON.parse(bytes.toString('utf8'));
    } catch (err) {
      return this.fail(member.name, `is not valid JSON (${(err as Error).message})`);
    }
  }

  /** A regular member's bytes from `offset` on. */
  open(member: ArchiveMember, offset: number): Readable {
    if (offset >= member.size) return Readable.from([], { objectMode: false });
    if (!this.gzip) {
      return createReadStream(this.file, { start: member.dataOffset + offset, end: member.dataOffset + member.size - 1 });
    }
    return Readable.from(this.rescan(member, offset), { objectMode: false });
  }

  /** A RegistrishError naming the archive and the member. */
  fail(member: string, why: string): never {
    throw new RegistrishError(`${this.label}: member ${quote(member)} ${why}`);
  }

  /** A gzip stream cannot seek: read it again up to the member and stream its bytes. */
  private async *rescan(target: ArchiveMember, offset: number): AsyncGenerator<Buffer> {
    try {
      for await (const entry of readTar(readChunks(this.file, true, this.inflateLimit, this.label))) {
        if (entry.dataOffset !== target.dataOffset || entry.size !== target.size) continue;
        let skip = offset;
        for await (const chunk of entry.body()) {
          if (skip >= chunk.length) {
            skip -= chunk.length;
            continue;
          }
          yield skip > 0 ? chunk.subarray(skip) : chunk;
          skip = 0;
        }
        return;
      }
    } catch (err) {
      throw archiveError(err, this.label);
    }
    this.fail(target.name, 'is no longer in the archive (did the file change during the build?)');
  }
}

function describeType(member: ArchiveMember): string {
  switch (member.type) {
    case 'directory':
      return 'a folder';
    case 'symlink':
      return 'a symbolic link';
    case 'hardlink':
      return `a hard link (to ${quote(member.linkName)})`;
    case 'file':
      return 'a regular file';
    default:
      return `a special member (tar type ${quote(member.typeflag)})`;
  }
}

/** `./a//b/` → `a/b`; refuses absolute names and `..` (the member would land outside the folder it is extracted into). */
function normalizeMemberName(raw: string, fail: (why: string) => never): string {
  if (raw.includes('\0')) fail('has a NUL in its name');
  if (raw.startsWith('/') || /^[A-Za-z]:[\\/]/u.test(raw)) fail('has an absolute name');
  if (raw.split(/[/\\]/u).includes('..')) fail('climbs out of the archive with ".."');
  return raw
    .split('/')
    .filter((part) => part !== '' && part !== '.')
    .join('/');
}

/** Compressions a tar file is commonly wrapped in that we do not read, by their magic bytes. */
const UNREAD_COMPRESSIONS: Array<[string, Buffer]> = [
  ['zstd', Buffer.from([0x28, 0xb5, 0x2f, 0xfd])],
  ['xz', Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])],
  ['bzip2', Buffer.from('BZh')],
];

/** Is the archive gzip-compressed (by its first bytes, whatever its name)? Names the file when it cannot be read. */
async function sniffGzip(file: string, label: string): Promise<boolean> {
  const hint = 'Paths in images.json are relative to its folder. Write the archive with `docker save -o FILE IMAGE`, `podman save` or `skopeo copy`.';
  let head: Buffer;
  try {
    const st = await stat(file);
    if (!st.isFile()) throw new RegistrishError(`${label}: ${file} is not a file${st.isDirectory() ? ' but a folder (an OCI layout folder is "oci:DIR")' : ''}`, { hint });
    const fh = await open(file, 'r');
    try {
      head = Buffer.alloc(6);
      head = head.subarray(0, (await fh.read(head, 0, head.length, 0)).bytesRead);
    } finally {
      await fh.close();
    }
  } catch (err) {
    if (err instanceof RegistrishError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new RegistrishError(`${label}: cannot read the archive: there is no such file`, { hint });
    throw new RegistrishError(`${label}: cannot read the archive: ${(err as Error).message}`, { cause: err, hint });
  }
  const other = UNREAD_COMPRESSIONS.find(([, magic]) => head.subarray(0, magic.length).equals(magic));
  if (other) throw new RegistrishError(`${label}: the archive is ${other[0]}-compressed; registrish reads plain and gzip-compressed archives (decompress it first)`);
  return head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b;
}

/**
 * The archive's tar stream: the file's bytes, through gunzip when it is gzip-compressed, stopping
 * with a message past `limit` inflated bytes (a bomb would otherwise be read to its end).
 */
async function* readChunks(file: string, gzip: boolean, limit: number, label: string): AsyncGenerator<Buffer> {
  const raw = createReadStream(file, { highWaterMark: 256 * 1024 });
  if (!gzip) {
    try {
      yield* raw as AsyncIterable<Buffer>;
    } finally {
      raw.destroy();
    }
    return;
  }
  const gunzip = createGunzip();
  raw.on('error', (err) => gunzip.destroy(err));
  raw.pipe(gunzip);
  let inflated = 0;
  try {
    for await (const chunk of gunzip as AsyncIterable<Buffer>) {
      inflated += chunk.length;
      if (inflated > limit) {
        const size = (await stat(file)).size;
        throw new RegistrishError(
          `${label}: the archive inflates to more than ${formatBytes(limit)} (${formatBytes(size)} of gzip on disk, over ${Math.floor(limit / size)}× its size); refused as a decompression bomb`,
          { hint: BOMB_HINT },
        );
      }
      yield chunk;
    }
  } finally {
    raw.destroy();
    gunzip.destroy();
  }
}

/** Errors of the tar and gzip layers, as messages naming the archive (and the member being read). */
function archiveError(err: unknown, label: string, member?: string): unknown {
  if (err instanceof TarFormatError) return new RegistrishError(`${label}: ${err.message}`);
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (typeof code === 'string' && code.startsWith('Z_')) {
    const where = member === undefined ? '' : ` at member ${quote(member)}`;
    return new RegistrishError(`${label}: the gzip stream is damaged or truncated${where} (${(err as Error).message})`);
  }
  return err;
}

/** Hashes a regular member as it streams by; notes its compression, and keeps it when it is small JSON. */
async function digestMember(entry: TarMember, member: ArchiveMember, inflate: boolean, ratio: number): Promise<void> {
  const hash = createHash('sha256');
  // Chunks seen before the first 4 bytes (the compression magic) were known, for the inflater.
  let pending: Buffer[] | undefined = [];
  let seen = 0;
  let json: Buffer[] | undefined = entry.size <= MAX_JSON_BYTES ? [] : undefined;
  let jsonLooking: boolean | undefined;
  let inflater: Inflater | undefined;
  const decide = () => {
    const head = Buffer.concat(pending!).subarray(0, 4);
    member.compression = head[0] === 0x1f && head[1] === 0x8b ? 'gzip' : head.equals(Buffer.from([0x28, 0xb5, 0x2f, 0xfd])) ? 'zstd' : 'none';
    if (member.compression === 'gzip' && inflate) inflater = new Inflater(inflateLimit(entry.size, ratio));
  };
  for await (const chunk of entry.body()) {
    hash.update(chunk);
    if (json && jsonLooking === undefined) {
      const first = chunk.findIndex((b) => b !== 0x20 && b !== 0x09 && b !== 0x0a && b !== 0x0d);
      if (first >= 0) jsonLooking = chunk[first] === 0x7b || chunk[first] === 0x5b;
      if (jsonLooking === false) json = undefined;
    }
    json?.push(chunk);
    if (pending) {
      pending.push(chunk);
      seen += chunk.length;
      if (seen < 4) continue;
      decide();
      const earlier = pending;
      pending = undefined;
      for (const c of earlier) await inflater?.write(c);
      continue;
    }
    await inflater?.write(chunk);
  }
  if (pending) {
    decide();
    for (const c of pending) await inflater?.write(c);
  }
  member.digest = `sha256:${hash.digest('hex')}`;
  if (json && jsonLooking) member.json = Buffer.concat(json);
  if (inflater) member.inflated = await inflater.end();
}

/**
 * Hashes what a gzip member decompresses to, chunk by chunk; a damaged stream, or one that
 * inflates past `limit` (a bomb: it is stopped there), is noted, not thrown.
 */
class Inflater {
  private readonly gunzip: Gunzip = createGunzip();
  private readonly hash = createHash('sha256');
  private failure: Error | undefined;
  private readonly done: Promise<void>;
  private inflated = 0;
  private bomb = false;

  constructor(private readonly limit: number) {
    this.gunzip.on('data', (c: Buffer) => {
      this.inflated += c.length;
      if (this.inflated > this.limit) {
        this.bomb = true;
        this.gunzip.destroy(new Error(`it inflates to more than ${formatBytes(this.limit)}`));
        return;
      }
      this.hash.update(c);
    });
    this.done = finished(this.gunzip).catch((err: Error) => {
      this.failure = err;
    });
  }

  async write(chunk: Buffer): Promise<void> {
    if (this.failure || this.gunzip.destroyed) return;
    if (!this.gunzip.write(chunk)) await Promise.race([once(this.gunzip, 'drain').catch(() => {}), this.done]);
  }

  async end(): Promise<NonNullable<ArchiveMember['inflated']>> {
    if (!this.failure && !this.gunzip.destroyed) this.gunzip.end();
    await this.done;
    if (this.bomb) return { error: `inflates to more than ${formatBytes(this.limit)}`, bomb: true };
    return this.failure ? { error: this.failure.message } : { digest: `sha256:${this.hash.digest('hex')}` };
  }
}
