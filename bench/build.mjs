// One registry build, as its own process, for the benchmark: loads the package the way a site
// does (the compiled dist/), prints the summary and the requests sent upstream, as JSON on stdout.
// Usage: node bench/build.mjs IMAGES OUT CACHE
import { Agent } from 'undici';
import { buildRegistry } from '../dist/index.js';

const [images, outputDir, cacheDir] = process.argv.slice(2);
if (!images || !outputDir || !cacheDir) {
  console.error('usage: bench/build.mjs IMAGES_JSON OUTPUT_DIR CACHE_DIR');
  process.exit(2);
}

const requests = { manifestHead: 0, manifestGet: 0, blobGet: 0, other: 0 };
const agent = new Agent({ connections: 8 }).compose((dispatch) => (opts, handler) => {
  const p = opts.path ?? '';
  if (p.includes('/manifests/')) requests[opts.method === 'HEAD' ? 'manifestHead' : 'manifestGet']++;
  else if (p.includes('/blobs/')) requests.blobGet++;
  else requests.other++;
  return dispatch(opts, handler);
});

const summary = await buildRegistry({
  images,
  outputDir,
  cacheDir,
  hosts: ['netlify'],
  imageConcurrency: 8,
  blobConcurrency: 6,
  linkMode: 'hardlink',
  logger: { info: () => {}, warn: (m) => console.error(m) },
  dispatcher: agent,
});
await agent.close();
const { paths: _paths, ...rest } = summary;
console.log(JSON.stringify({ ...rest, requests }));
