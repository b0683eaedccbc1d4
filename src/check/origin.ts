import { UsageError } from '../cli/args.ts';

// What `check` is pointed at: a registry lives at the root of its host, so only an origin is accepted.

/** The registry's origin: only `https://host[:port]`, optionally followed by `/v2/` (registries live at the root). */
export function registryOrigin(input: string): string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//iu.test(input) ? input : `https://${input}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new UsageError(`"${input}" is not a URL (expected e.g. https://registry.example.com)`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new UsageError(`"${input}": only http:// and https:// are supported`);
  if (url.username || url.password) throw new UsageError(`"${input}": credentials in the URL are not supported`);
  if (!['/', '/v2', '/v2/'].includes(url.pathname) || url.search) {
    throw new UsageError(`"${input}": a registry is served from the root of its host (pull clients ask for /v2/ there); give just the origin`);
  }
  return url.origin;
}
