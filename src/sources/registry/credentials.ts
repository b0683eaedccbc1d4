import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DOCKER_HUB, DOCKER_HUB_SERVER, isDockerHub } from '../../model/docker-hub.ts';
import { RegistrishError } from '../../util/errors.ts';
import { addSecret, redact } from '../../util/redact.ts';
import { DEFAULT_HELPER_TIMEOUT_MS, getFromHelper, helperProgram, TOKEN_USERNAME } from './credential-helper.ts';

// Registry credentials, from the places users already keep them, in docker's order: REGISTRISH_AUTH
// (easy to set in a CI/hosting UI; like docker's DOCKER_AUTH_CONFIG, it wins), then the Docker client
// config (`docker login`): a registry with a credential helper (`credHelpers[registry]`, else the
// default `credsStore`) gets its login from the helper, asked on first use; one without gets it from
// `auths`. Every secret is registered with redact.ts as soon as it is read.

export type Credential = { username: string; password: string } | { identityToken: string };

export interface CredentialStore {
  /**
   * Credential for a registry as users write it (`docker.io`, `ghcr.io`, `127.0.0.1:5000`, or a
   * `docker login` URL key). Runs the registry's credential helper the first time it is asked for
   * (once per store and registry; concurrent callers share the run). Never rejects: a helper that
   * fails is a warning, and the registry is read anonymously (or with its `auths` entry, as docker).
   */
  get(registry: string): Promise<Credential | undefined>;
  /** After get(): what went wrong with the registry's credential helper, for the message of a later 401. */
  helperProblem(registry: string): string | undefined;
}

export interface LoadCredentialsOptions {
  env?: NodeJS.ProcessEnv;
  homeDir?: string;
  /** Where helper failures are reported (already redacted). */
  warn?: (message: string) => void;
}

export const AUTH_ENV = 'REGISTRISH_AUTH';
/** Time limit of one helper run, in seconds (default 10). */
export const HELPER_TIMEOUT_ENV = 'REGISTRISH_CREDENTIAL_HELPER_TIMEOUT';
/** The server address docker gives helpers (and `auths`) for Docker Hub; other registries go by host[:port]. */

/**
 * `https://index.docker.io/v1/` → `docker.io`, `https://ghcr.io` → `ghcr.io`, `GHCR.io/` → `ghcr.io`.
 * Scheme and path are dropped (docker login keys may carry both); host names are case-insensitive.
 */
export function normalizeRegistry(key: string): string {
  let host = key.trim().replace(/^[a-z][a-z0-9+.-]*:\/\//i, '');
  host = host.split('/', 1)[0]!.toLowerCase();
  return isDockerHub(host) ? DOCKER_HUB : host;
}

/** What docker writes on a helper's stdin for a registry: `https://index.docker.io/v1/` for Docker Hub, else host[:port]. */
export function helperServerAddress(registry: string): string {
  const name = normalizeRegistry(registry);
  return name === DOCKER_HUB ? DOCKER_HUB_SERVER : name;
}

/** Reads every file and variable once; helpers run later, on first use of their registry. */
export function loadCredentials({ env = process.env, homeDir = os.homedir(), warn = () => {} }: LoadCredentialsOptions = {}): CredentialStore {
  const fromEnv = new Map<string, Credential>();
  const fromAuths = new Map<string, Credential>();
  const helpers = new Map<string, string>();
  let defaultStore: string | undefined;

  const dockerConfig = env.DOCKER_CONFIG ? path.join(env.DOCKER_CONFIG, 'config.json') : path.join(homeDir, '.docker', 'config.json');
  const config = readDockerConfig(dockerConfig);
  if (config) {
    for (const [key, entry] of Object.entries(config.auths)) {
      const cred = parseEntry(entry, `${dockerConfig}: auths entry ${describeKey(key)}`);
      if (cred) fromAuths.set(normalizeRegistry(key), cred);
    }
    for (const [key, helper] of Object.entries(config.credHelpers)) helpers.set(normalizeRegistry(key), helper);
    defaultStore = config.credsStore;
  }
  for (const [key, cred] of readEnvAuth(env[AUTH_ENV])) fromEnv.set(normalizeRegistry(key), cred);
  const timeoutMs = readTimeout(env[HELPER_TIMEOUT_ENV]);

  const asked = new Map<string, Promise<Credential | undefined>>();
  const problems = new Map<string, string>();

  /** docker's nativeStore: the helper's answer replaces `auths`; "not found" is no credential; a failure falls back to `auths`. */
  const ask = async (name: string, helper: string): Promise<Credential | undefined> => {
    const answer = await getFromHelper(helper, helperServerAddress(name), { env, timeoutMs });
    if (answer.kind === 'found') return helperCredential(answer.username, answer.secret);
    if (answer.kind === 'not-found') return undefined;
    const fallback = fromAuths.get(name);
    const problem = `the credential helper ${helperProgram(helper)} failed for ${name}: ${answer.reason}`;
    problems.set(name, problem);
    warn(redact(`${problem}; ${fallback ? `using its auths entry in ${dockerConfig}` : 'pulling from it anonymously'}`));
    return fallback;
  };

  return {
    get: (registry) => {
      const name = normalizeRegistry(registry);
      const given = fromEnv.get(name);
      if (given) return Promise.resolve(given);
      const helper = helpers.get(name) ?? defaultStore;
      if (!helper) return Promise.resolve(fromAuths.get(name));
      let p = asked.get(name);
      if (!p) asked.set(name, (p = ask(name, helper)));
      return p;
    },
    helperProblem: (registry) => problems.get(normalizeRegistry(registry)),
  };
}

/** A helper's answer as a credential: the `<token>` user name marks an identity token. */
function helperCredential(username: string, secret: string): Credential {
  if (username === TOKEN_USERNAME) return { identityToken: secret };
  registerUserPass(username, secret);
  return { username, password: secret };
}

function readTimeout(value: string | undefined): number {
  if (value === undefined || value.trim() === '') return DEFAULT_HELPER_TIMEOUT_MS;
  const s = Number(value);
  if (!Number.isFinite(s) || s <= 0) {
    throw new RegistrishError(`${HELPER_TIMEOUT_ENV} must be a number of seconds, got "${redact(value.slice(0, 40))}"`, { hint: `e.g. ${HELPER_TIMEOUT_ENV}=30` });
  }
  return Math.round(s * 1000);
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
