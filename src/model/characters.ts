// Which characters a name, tag, host or digest may contain, described for a message. Lookalikes
// (Cyrillic "а", full-width "／") must never pass as the ASCII they resemble.

/** Characters no name, tag or host may contain, described for a message; undefined when all are printable ASCII. */
export function characterProblem(s: string): string | undefined {
  for (const ch of s) {
    const code = ch.codePointAt(0)!;
    const u = `U+${code.toString(16).toUpperCase().padStart(4, '0')}`;
    if (code < 0x20 || code === 0x7f) return `it contains a control character (${u})`;
    if (/\s/u.test(ch)) return `it contains whitespace (${u})`;
    // Lookalikes (Cyrillic "а", full-width "／") must not pass as the ASCII they resemble.
    if (code > 0x7e) return `it contains the non-ASCII character "${ch}" (${u}); only ASCII is allowed`;
  }
  return undefined;
}

