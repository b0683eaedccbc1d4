// A reference for memory: one blob received and hashed, nothing else, by undici (what a build
// uses) or by node:http. Its peak RSS is what Node's receive path alone costs.
// Usage: node bench/fetch-only.mjs URL [undici|http]
import { createHash } from 'node:crypto';
import http from 'node:http';
import { Agent, request } from 'undici';

const [url, how = 'undici'] = process.argv.slice(2);
if (!url || !['undici', 'http'].includes(how)) {
  console.error('usage: bench/fetch-only.mjs URL [undici|http]');
  process.exit(2);
}

/** The body of `url` (node:http follows a redirect, as a build would). */
async function open(target, redirects = 3) {
  if (how === 'undici') {
    const agent = new Agent({ connections: 8 });
    // The local upstream serves blobs itself; a redirect would fail here, loudly.
    const res = await request(target, { dispatcher: agent });
    if (res.statusCode !== 200) throw new Error(`${target}: HTTP ${res.statusCode}`);
    return res.body;
  }
  const res = await new Promise((resolve, reject) => http.get(target, resolve).on('error', reject));
  if (res.statusCode >= 300 && res.statusCode < 400 && redirects > 0) {
    res.resume();
    return open(new URL(res.headers.location, target), redirects - 1);
  }
  if (res.statusCode !== 200) throw new Error(`${target}: HTTP ${res.statusCode}`);
  return res;
}

const hash = createHash('sha256');
let bytes = 0;
for await (const chunk of await open(url)) {
  hash.update(chunk);
  bytes += chunk.length;
}
console.log(JSON.stringify({ how, bytes, digest: `sha256:${hash.digest('hex')}` }));
process.exit(0);
