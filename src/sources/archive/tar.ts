// A streaming tar reader: headers (POSIX ustar, pax extended headers, GNU long names) one after
// the other, each member's bytes streamed to whoever wants them and skipped otherwise. Written here
// rather than taken from tar-stream because the archive sources need what it does not give: the
// offset of every member's data in the stream (so a layer of an uncompressed archive is served by
// reading that byte range of the file, not by scanning the archive again), and a strict reading
// (checksums checked, a missing end-of-archive marker is a truncated archive) with messages that
// name the member. It never writes anything: nothing here can create a file or follow a link.

export type MemberType = 'file' | 'directory' | 'symlink' | 'hardlink' | 'other';

export interface TarHeader {
  /** The name as written (a pax `path` or GNU long name wins over the header field). */
  name: string;
  type: MemberType;
  /** The raw typeflag, for messages about `other` members. */
  typeflag: string;
  size: number;
  /** Target of a symbolic or hard link. */
  linkName: string;
  /** Offset of the member's first data byte in the (uncompressed) tar stream. */
  dataOffset: number;
}

export interface TarMember extends TarHeader {
  /** The member's bytes, once; whatever is not read is skipped when the next member is asked for. */
  body(): AsyncGenerator<Buffer>;
}

/** The archive is not a well-formed tar; `member` is the member it happened in or after. */
export class TarFormatError extends Error {
  constructor(
    message: string,
    readonly member?: string,
  ) {
    super(message);
    this.name = 'TarFormatError';
  }
}

const BLOCK = 512;
/** pax headers and GNU long names are a few hundred bytes; anything near this is not a name. */
const MAX_META_BYTES = 1024 * 1024;

/** Pulls exact byte counts from a stream of chunks, counting what it consumed. */
class ByteReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private ended = false;
  /** Bytes handed out (or skipped) so far: the offset of the next byte. */
  position = 0;

  constructor(private readonly source: AsyncIterator<Buffer>) {}

  private async fill(n: number): Promise<void> {
    while (this.buffered < n && !this.ended) {
      const next = await this.source.next();
      if (next.done) this.ended = true;
      else if (next.value.length > 0) {
        this.chunks.push(next.value);
        this.buffered += next.value.length;
      }
    }
  }

  /** The next chunk of at most `max` bytes; empty at the end of the stream. */
  async chunk(max: number): Promise<Buffer> {
    if (this.buffered === 0) await this.fill(1);
    const first = this.chunks[0];
    if (!first || max <= 0) return Buffer.alloc(0);
    let out: Buffer;
    if (first.length <= max) {
      out = first;
      this.chunks.shift();
    } else {
      out = first.subarray(0, max);
      this.chunks[0] = first.subarray(max);
    }
    this.buffered -= out.length;
    this.position += out.length;
    return out;
  }

  /** Exactly `n` bytes, or fewer when the stream ends first. */
  async read(n: number): Promise<Buffer> {
    await this.fill(n);
    const parts: Buffer[] = [];
    let got = 0;
    while (got < n) {
      const c = await this.chunk(n - got);
      if (c.length === 0) break;
      parts.push(c);
      got += c.length;
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  /** Skips `n` bytes; returns how many there were. */
  async skip(n: number): Promise<number> {
    let skipped = 0;
    while (skipped < n) {
      const c = await this.chunk(n - skipped);
      if (c.length === 0) break;
      skipped += c.length;
    }
    return skipped;
  }
}

const padding = (size: number): number => (BLOCK - (size % BLOCK)) % BLOCK;

function cString(block: Buffer, start: number, length: number): string {
  const field = block.subarray(start, start + length);
  const nul = field.indexOf(0);
  return field.subarray(0, nul < 0 ? length : nul).toString('utf8');
}

/** An octal (NUL/space padded) or GNU base-256 number field. */
function numberField(block: Buffer, start: number, length: number, what: string): number {
  const field = block.subarray(start, start + length);
  if (field[0]! & 0x80) {
    if (field[0] === 0xff) throw new TarFormatError(`a header's ${what} field is negative`);
    let n = field[0]! & 0x7f;
    for (const byte of field.subarray(1)) n = n * 256 + byte;
    if (!Number.isSafeInteger(n)) throw new TarFormatError(`a header's ${what} field is too large`);
    return n;
  }
  const text = field.toString('latin1').replace(/[\0 ]+$/u, '').replace(/^ +/u, '');
  if (text === '') return 0;
  if (!/^[0-7]+$/u.test(text)) throw new TarFormatError(`a header's ${what} field is not an octal number (${JSON.stringify(text)})`);
  return parseInt(text, 8);
}

function checksumMatches(block: Buffer): boolean {
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const byte = i >= 148 && i < 156 ? 0x20 : block[i]!;
    unsigned += byte;
    signed += byte > 127 ? byte - 256 : byte;
  }
  let stored: number;
  try {
    stored = numberField(block, 148, 8, 'checksum');
  } catch {
    return false;
  }
  return stored === unsigned || stored === signed;
}

const isZeroBlock = (block: Buffer): boolean => block.every((b) => b === 0);

function typeOf(flag: string, name: string): MemberType {
  switch (flag) {
    case '0':
    case '\0':
    case '7':
      // Old (pre-POSIX) archives mark directories only by the trailing slash.
      return name.endsWith('/') ? 'directory' : 'file';
    case '1':
      return 'hardlink';
    case '2':
      return 'symlink';
    case '5':
      return 'directory';
    default:
      return 'other';
  }
}

/** pax extended header records: `<length> <key>=<value>\n`. */
function parsePax(data: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let pos = 0;
  while (pos < data.length) {
    if (data[pos] === 0) break; // some writers pad the record area with NULs
    const space = data.indexOf(0x20, pos);
    const length = space < 0 ? NaN : Number(data.subarray(pos, space).toString('latin1'));
    if (!Number.isSafeInteger(length) || length <= 0 || pos + length > data.length || data[pos + length - 1] !== 0x0a) {
      throw new TarFormatError('a pax extended header is malformed');
    }
    const record = data.subarray(space + 1, pos + length - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq <= 0) throw new TarFormatError('a pax extended header record has no key');
    out.set(record.slice(0, eq), record.slice(eq + 1));
    pos += length;
  }
  return out;
}

/**
 * The members of a tar stream, in order. Consume a member's body (or not) before asking for the
 * next member. Throws TarFormatError for a bad header, a truncated member or a missing
 * end-of-archive marker; anything after the marker is ignored (tar pads to its record size).
 */
export async function* readTar(chunks: AsyncIterable<Buffer>): AsyncGenerator<TarMember> {
  const iterator = chunks[Symbol.asyncIterator]();
  const reader = new ByteReader(iterator);
  let previous: string | undefined;
  let pax = new Map<string, string>();
  let longName: string | undefined;
  let longLink: string | undefined;
  const truncated = (name: string) => new TarFormatError(`the archive ends inside member ${JSON.stringify(name)} (truncated)`, name);
  const after = () => (previous === undefined ? '' : ` after member ${JSON.stringify(previous)}`);
  try {
    for (;;) {
      const at = reader.position;
      const block = await reader.read(BLOCK);
      if (block.length === 0) throw new TarFormatError(`the archive ends without the end-of-archive marker${after()} (truncated)`, previous);
      if (block.length < BLOCK) throw new TarFormatError(`the archive ends inside a header${after()} (truncated)`, previous);
      if (isZeroBlock(block)) return;
      if (!checksumMatches(block)) {
        throw new TarFormatError(
          `the bytes at offset ${at}${after()} are not a tar header${previous === undefined ? ' (not a tar archive?)' : ' (that member is longer than its header says, or the archive is damaged)'}`,
          previous,
        );
      }
      const flag = String.fromCharCode(block[156]!);
      let size = numberField(block, 124, 12, 'size');
      const magic = block.subarray(257, 263).toString('latin1');
      let name = cString(block, 0, 100);
      // ustar keeps long paths as prefix + "/" + name; GNU uses that area for other fields.
      const prefix = magic === 'ustar\0' ? cString(block, 345, 155) : '';
      if (prefix) name = `${prefix}/${name}`;

      if (flag === 'x' || flag === 'g' || flag === 'L' || flag === 'K') {
        if (size > MAX_META_BYTES) throw new TarFormatError(`a ${flag === 'x' || flag === 'g' ? 'pax' : 'GNU long name'} header${after()} declares ${size} bytes`, previous);
        const data = await reader.read(size);
        if (data.length < size || (await reader.skip(padding(size))) < padding(size)) throw truncated(previous ?? name);
        if (flag === 'x') pax = parsePax(data);
        else if (flag === 'L') longName = cString(data, 0, data.length);
        else if (flag === 'K') longLink = cString(data, 0, data.length);
        // 'g' (global pax) sets defaults for every later member; none of its keys matter here.
        continue;
      }

      name = pax.get('path') ?? longName ?? name;
      const linkName = pax.get('linkpath') ?? longLink ?? cString(block, 157, 100);
      const paxSize = pax.get('size');
      if (paxSize !== undefined) {
        if (!/^[0-9]{1,16}$/u.test(paxSize) || !Number.isSafeInteger(Number(paxSize))) {
          throw new TarFormatError(`member ${JSON.stringify(name)} has an invalid pax size ${JSON.stringify(paxSize)}`, name);
        }
        size = Number(paxSize);
      }
      // Links, devices, folders and FIFOs carry no data whatever their size field says (as in Go's
      // archive/tar, which docker load and podman use): read the archive the way they do.
      if ('123456'.includes(flag)) size = 0;
      pax = new Map();
      longName = undefined;
      longLink = undefined;

      let consumed = 0;
      const member: TarMember = {
        name,
        type: typeOf(flag, name),
        typeflag: flag,
        size,
        linkName,
        dataOffset: reader.position,
        async *body() {
          while (consumed < size) {
            const c = await reader.chunk(size - consumed);
            if (c.length === 0) throw truncated(name);
            consumed += c.length;
            yield c;
          }
        },
      };
      yield member;
      const rest = size - consumed + padding(size);
      if ((await reader.skip(rest)) < rest) throw truncated(name);
      consumed = size;
      previous = name;
    }
  } finally {
    await iterator.return?.();
  }
}
