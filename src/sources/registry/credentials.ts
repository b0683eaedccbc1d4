import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DOCKER_HUB, isDockerHub } from '../../model/docker-hub.ts';
import { RegistrishError } from '../../util/errors.ts';
import { addSecret } from '../../util/redact.ts';

// Registry credentials, from the places users already keep them: the Docker client config
// (`docker login`), then REGISTRISH_AUTH (easy to set in a CI/hosting UI). Later sources win.
// Every secret is registered with redact.ts as soon as it is read.

export type Credential = { username: string; password: string } | { identityToken: string };

export interface CredentialStore {
  /** Credential for a registry as users write it (`docker.io`, `ghcr.io`, `127.0.0.1:5000`, or a `docker login` URL key). */
  get(registry: string): Credential | undefined;
  /**
   * The Docker credential helper (`credHelpers[registry]`, else `credsStore`) that holds this
   * registry's login, when we have no usable credential for it ourselves: we cannot call
   * helpers, so the caller should warn and suggest REGISTRISH_AUTH.
   */
  unsupportedHelperFor(registry: string): string | undefined;
}

export interface LoadCredentialsOptions {
  env?: NodeJS.ProcessEnv;
  homeDir?: string;
}

export const AUTH_ENV = 'REGISTRISH_AUTH';


/**
 * `https://index.docker.io/v1/` → `docker.io`, `https://ghcr.io` → `ghcr.io`, `GHCR.io/` → `ghcr.io`.
 * Scheme and path are dropped (docker login keys may carry both); host names are case-insensitive.
 */
export function normalizeRegistry(key: string): string {
  let host = key.trim().replace(/^[a-z][a-z0-9+.-]*:\/\//i, '');
  host = host.split('/', 1)[0]!.toLowerCase();
  return isDockerHub(host) ? DOCKER_HUB : host;
}

/** Loads every source once; lookups are then synchronous. */
export function loadCredentials({ env = process.env, homeDir = os.homedir() }: LoadCredentialsOptions = {}): CredentialStore {
  const creds = new Map<string, Credential>();
  const helpers = new Map<string, string>();
  let defaultStore: string | undefined;

  const dockerConfig = env.DOCKER_CONFIG ? path.join(env.DOCKER_CONFIG, 'config.json') : path.join(homeDir, '.docker', 'config.json');
  const config = readDockerConfig(dockerConfig);
  if (config) {
    for (const [key, entry] of Object.entries(config.auths)) {
      const cred = parseEntry(entry, `${dockerConfig}: auths entry ${describeKey(key)}`);
      if (cred) creds.set(normalizeRegistry(key), cred);
    }
    for (const [key, helper] of Object.entries(config.credHelpers)) helpers.set(normalizeRegistry(key), helper);
    defaultStore = config.credsStore;
  }

  for (const [key, cred] of readEnvAuth(env[AUTH_ENV])) creds.set(normalizeRegistry(key), cred);

  return {
    get: (registry) => creds.get(normalizeRegistry(registry)),
    unsupportedHelperFor: (registry) => {
      const name = normalizeRegistry(registry);
      if (creds.has(name)) return undefined;
      return helpers.get(name) ?? defaultStore;
    },
  };
}

interface DockerConfig {
  auths: Record<string, unknown>;
  credHelpers: Record<string, string>;
  credsStore?: string;
}

function readDockerConfig(file: string): DockerConfig | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined; // no docker login here: fine
    throw new RegistrishError(`cannot read the Docker config ${file} (${code ?? 'read error'})`);
  }
  if (text.trim() === '') return undefined;
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    // The parser's message quotes the input, which holds secrets: say only where.
    throw new RegistrishError(`the Docker config ${file} is not valid JSON`, { hint: 'Fix or remove the file, or run docker login again.' });
  }
  if (!isObject(doc)) throw new RegistrishError(`the Docker config ${file} is not a JSON object`);
  const auths = doc.auths === undefined ? {} : doc.auths;
  if (!isObject(auths)) throw new RegistrishError(`the Docker config ${file}: "auths" is not an object`);
  const credHelpers: Record<string, string> = {};
  if (isObject(doc.credHelpers)) {
    for (const [k, v] of Object.entries(doc.credHelpers)) if (typeof v === 'string' && v) credHelpers[k] = v;
  }
  const credsStore = typeof doc.credsStore === 'string' && doc.credsStore ? doc.credsStore : undefined;
  return { auths, credHelpers, credsStore };
}

function readEnvAuth(value: string | undefined): Array<[string, Credential]> {
  if (value === undefined || value.trim() === '') return [];
  const example = `${AUTH_ENV}='{"ghcr.io":"user:token"}'`;
  let doc: unknown;
  try {
    doc = JSON.parse(value);
  } catch {
    throw new RegistrishError(`${AUTH_ENV} is not valid JSON`, { hint: `Set it to a JSON object mapping registry to "user:password", e.g. ${example}.` });
  }
  if (!isObject(doc)) {
    throw new RegistrishError(`${AUTH_ENV} must be a JSON object mapping registry to "user:password"`, { hint: `e.g. ${example}` });
  }
  const out: Array<[string, Credential]> = [];
  for (const [key, entry] of Object.entries(doc)) {
    const what = `${AUTH_ENV} entry ${describeKey(key)}`;
    let cred: Credential | undefined;
    if (typeof entry === 'string') {
      cred = splitUserPass(entry, what);
    } else {
      // Also accept the shape docker login writes ({auth}, {username,password}, {identitytoken}).
      cred = parseEntry(entry, what);
    }
    if (!cred) throw new RegistrishError(`${what} has no credential`, { hint: `Use "user:password", e.g. ${example}.` });
    out.push([key, cred]);
  }
  return out;
}

/** One `auths` entry as docker login writes it. Undefined for an empty entry (the login lives in a helper). */
function parseEntry(entry: unknown, what: string): Credential | undefined {
  if (!isObject(entry)) throw new RegistrishError(`${what} is not an object`);
  const identityToken = str(entry.identitytoken) ?? str(entry.identityToken);
  if (identityToken) {
    addSecret(identityToken);
    if (typeof entry.auth === 'string') addSecret(entry.auth);
    return { identityToken };
  }
  const username = str(entry.username);
  const password = str(entry.password);
  if (username !== undefined && password !== undefined) {
    registerUserPass(username, password);
    if (typeof entry.auth === 'string') addSecret(entry.auth);
    return { username, password };
  }
  const auth = str(entry.auth);
  if (auth) {
    addSecret(auth);
    const decoded = Buffer.from(auth, 'base64').toString('utf8');
    return splitUserPass(decoded, what, '"auth" is not base64 of user:password');
  }
  return undefined;
}

function splitUserPass(value: string, what: string, problem = 'is not of the form "user:password"'): Credential {
  const i = value.indexOf(':');
  // The message never quotes the value: it was meant to hold a secret.
  if (i <= 0 || i === value.length - 1) throw new RegistrishError(`${what} ${problem}`);
  const username = value.slice(0, i);
  const password = value.slice(i + 1);
  registerUserPass(username, password);
  return { username, password };
}

function registerUserPass(username: string, password: string): void {
  addSecret(password);
  addSecret(`${username}:${password}`);
  addSecret(Buffer.from(`${username}:${password}`).toString('base64'));
}

/**
 * Keys name registries, but a user who swapped key and value would put a secret there:
 * quote a key only when it looks like a host or URL.
 */
function describeKey(key: string): string {
  return /^([a-z][a-z0-9+.-]*:\/\/)?[a-z0-9.-]+(:\d+)?(\/[\w./-]*)?$/i.test(key) ? `"${key}"` : '(key not shown)';
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
