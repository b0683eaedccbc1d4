// A reference for memory: one blob downloaded with undici and thrown away, in the same kind of
// process as a build (the package loaded as bench/build.mjs loads it). Its peak RSS is what
// Node's receive path alone costs. Usage: node bench/fetch-only.mjs URL
import { request } from 'undici';
import '../dist/index.js';

const url = process.argv[2];
if (!url) {
  console.error('usage: bench/fetch-only.mjs URL');
  process.exit(2);
}
const res = await request(url);
if (res.statusCode !== 200) throw new Error(`${url}: HTTP ${res.statusCode}`);
let bytes = 0;
for await (const chunk of res.body) bytes += chunk.length;
console.log(JSON.stringify({ bytes }));
