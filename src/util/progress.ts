import { formatBytes } from './format.ts';

// Progress of long transfers (blob downloads, uploads to a blob store), the way people expect it:
// on a terminal one live line (bytes done/total, rate, blobs left) redrawn in place; in a log
// that is not a terminal (Netlify's build log, CI) a plain line every few seconds; nothing at all
// for work that finishes quickly, and never more than one line per interval.

export interface ProgressOptions {
  /** `downloading`, `uploading`: the line's first word. */
  verb: string;
  /** A terminal to redraw one line on (process.stderr when it is a TTY); absent: plain lines. */
  tty?: { write(text: string): unknown; columns?: number };
  /** Where plain lines go (the build's logger). */
  log: (line: string) => void;
  /** Nothing is shown before this much time has passed (quick work stays silent). Default 2 s. */
  delayMs?: number;
  /** Plain lines at most this often. Default 10 s. */
  plainEveryMs?: number;
  /** The terminal line at most this often. Default 250 ms. */
  ttyEveryMs?: number;
  now?: () => number;
}

export class Progress {
  private totalBytes = 0;
  private doneBytes = 0;
  private items = 0;
  private itemsDone = 0;
  private readonly started: number;
  private lastShown = -Infinity;
  private drawn = false;
  private timer?: NodeJS.Timeout;
  private readonly now: () => number;

  constructor(private readonly o: ProgressOptions) {
    this.now = o.now ?? (() => performance.now());
    this.started = this.now();
    // A timer as well as the byte callbacks: a stalled transfer still says where it stands.
    const every = o.tty ? (o.ttyEveryMs ?? 250) : (o.plainEveryMs ?? 10_000);
    this.timer = setInterval(() => this.tick(), Math.min(every, 1000));
    this.timer.unref();
  }

  /** More work: `bytes` in `items` blobs. */
  addWork(bytes: number, items = 1): void {
    this.totalBytes += bytes;
    this.items += items;
  }

  /** Bytes transferred (retries may count bytes twice: the shown figure never passes the total). */
  addBytes(n: number): void {
    this.doneBytes += n;
    this.tick();
  }

  /** One blob finished; `bytesLeft` of it that no byte callback reported (it was already there). */
  itemDone(bytesLeft = 0): void {
    this.itemsDone++;
    this.doneBytes += bytesLeft;
    this.tick();
  }

  /** Ends the progress; a terminal line is cleared (the summary says what was done). */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    if (this.drawn) this.o.tty!.write('\r\u001b[K');
    this.drawn = false;
  }

  /** The line as shown (also what tests read). */
  line(): string {
    const elapsed = (this.now() - this.started) / 1000;
    const done = Math.min(this.doneBytes, this.totalBytes);
    const rate = elapsed > 0 ? done / elapsed : 0;
    const pct = this.totalBytes > 0 ? ` (${Math.floor((done / this.totalBytes) * 100)}%)` : '';
    const left = this.items - this.itemsDone;
    return `${this.o.verb}: ${formatBytes(done)} of ${formatBytes(this.totalBytes)}${pct}, ${formatBytes(rate)}/s, ${left} blob${left === 1 ? '' : 's'} left`;
  }

  private tick(): void {
    if (!this.timer) return;
    const t = this.now();
    if (t - this.started < (this.o.delayMs ?? 2000)) return;
    if (this.itemsDone >= this.items && this.doneBytes >= this.totalBytes) return;
    if (this.o.tty) {
      if (t - this.lastShown < (this.o.ttyEveryMs ?? 250)) return;
      this.lastShown = t;
      const width = Math.max(20, (this.o.tty.columns ?? 100) - 1);
      this.o.tty.write(`\r\u001b[K${this.line().slice(0, width)}`);
      this.drawn = true;
    } else {
      if (t - this.lastShown < (this.o.plainEveryMs ?? 10_000)) return;
      // The first plain line waits a whole interval too: a build of a few seconds stays quiet.
      if (t - this.started < (this.o.plainEveryMs ?? 10_000)) return;
      this.lastShown = t;
      this.o.log(this.line());
    }
  }
}

/** A terminal to draw on, when the process writes to one and nobody asked for plain lines. */
export function progressTty(env: NodeJS.ProcessEnv = process.env): ProgressOptions['tty'] {
  if (env['REGISTRISH_PROGRESS'] === 'plain' || env['CI']) return undefined;
  return process.stderr.isTTY ? process.stderr : undefined;
}
