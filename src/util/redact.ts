// Credentials never appear in logs, output files or error messages. Every secret the build
// learns (passwords, base64 user:pass, identity and bearer tokens) is registered here, and
// every message that may carry outside text goes through redact() before it is shown.

const MASK = '***';
/** Shorter strings would mask ordinary words and digits all over messages. */
const MIN_SECRET_LENGTH = 4;

// Module-level on purpose: secrets are found deep in credentials/auth, and masked far away in
// the logger; threading a registry object through every layer buys nothing.
const secrets = new Set<string>();
/** Longest first, so a secret that contains another is masked whole. Rebuilt lazily. */
let ordered: string[] | undefined;

/**
 * Query parameters that carry credentials or signatures (token endpoints, presigned S3/GCS/CDN
 * redirect URLs). Lower-case; matched case-insensitively.
 */
const SENSITIVE_PARAMS = new Set([
  'access_token',
  'api_key',
  'apikey',
  'auth',
  'client_secret',
  'code',
  'id_token',
  'key',
  'pass',
  'passwd',
  'password',
  'refresh_token',
  'secret',
  'sig',
  'signature',
  'token',
  'verify',
  'x-amz-credential',
  'x-amz-security-token',
  'x-amz-signature',
  'x-goog-credential',
  'x-goog-signature',
]);

/** Registers a secret (and its URL-encoded form) to be masked. Empty or very short strings are ignored. */
export function addSecret(secret: string | undefined | null): void {
  if (!secret || secret.length < MIN_SECRET_LENGTH) return;
  secrets.add(secret);
  // It may also show up inside a URL (query string) in encoded form.
  const encoded = encodeURIComponent(secret);
  if (encoded !== secret) secrets.add(encoded);
  ordered = undefined;
}

/** Forgets every registered secret (tests). */
export function clearSecrets(): void {
  secrets.clear();
  ordered = undefined;
}

// scheme://userinfo@ — userinfo ends at the last '@' before the path/query/fragment/whitespace.
const URL_USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#@'"<>]*@/gi;
// ?name=value or &name=value inside free text.
const QUERY_PARAM = /([?&;])([^=&#\s'"<>]+)=([^&#\s'"<>]*)/g;

/** Masks every registered secret, URL userinfo and sensitive query parameters in `text`. */
export function redact(text: string): string {
  let out = maskSecrets(text);
  out = out.replace(URL_USERINFO, '$1');
  out = out.replace(QUERY_PARAM, (whole, sep: string, name: string) =>
    isSensitiveParam(name) ? `${sep}${name}=${MASK}` : whole,
  );
  return out;
}

/** A URL fit for messages: no userinfo, sensitive query values masked, registered secrets masked. */
export function redactUrl(url: string | URL): string {
  let u: URL;
  try {
    u = new URL(String(url));
  } catch {
    return redact(String(url));
  }
  u.username = '';
  u.password = '';
  for (const name of [...u.searchParams.keys()]) {
    if (isSensitiveParam(name)) u.searchParams.set(name, MASK);
  }
  return maskSecrets(u.href);
}

function isSensitiveParam(name: string): boolean {
  let decoded = name;
  try {
    decoded = decodeURIComponent(name);
  } catch {
    // keep the raw name
  }
  return SENSITIVE_PARAMS.has(decoded.toLowerCase());
}

function maskSecrets(text: string): string {
  if (secrets.size === 0) return text;
  ordered ??= [...secrets].sort((a, b) => b.length - a.length);
  let out = text;
  for (const s of ordered) {
    if (out.includes(s)) out = out.split(s).join(MASK);
  }
  return out;
}
