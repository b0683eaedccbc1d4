import { defaultRepositoryName, isLoopbackHost, parseReference, registryApiHost } from '../../model/reference.ts';
import { quote } from '../../util/format.ts';
import type { SourceKind, SourceRef } from '../source.ts';
import { RegistryClient } from './client.ts';
import { loadCredentials, type CredentialStore } from './credentials.ts';
import { RegistrySource } from './source.ts';

// An image reference on a registry (`alpine:3.20`, `ghcr.io/org/tool@sha256:…`): the default kind,
// read as `docker pull` reads it.

export interface RegistryRef extends SourceRef {
  kind: 'registry';
  /** Registry as the user means it, normalized: `docker.io`, `ghcr.io`, `127.0.0.1:5000`. Used for credentials. */
  registry: string;
  /** host[:port] the HTTP API lives on (`registry-1.docker.io` for Docker Hub). */
  apiHost: string;
  /** Plain HTTP (loopback hosts, or listed in insecureRegistries). */
  insecure: boolean;
  /** Repository path on the source registry, e.g. `library/alpine`. */
  repository: string;
}

export const registryKind: SourceKind<RegistryRef> = {
  name: 'registry',
  parse(original, ctx) {
    const parsed = parseReference(original);
    const ref: RegistryRef = {
      kind: 'registry',
      registry: parsed.domain,
      apiHost: registryApiHost(parsed.domain),
      insecure: isLoopbackHost(parsed.domain) || ctx.insecureRegistries.has(parsed.domain.toLowerCase()),
      repository: parsed.path,
      original,
    };
    if (parsed.tag !== undefined) ref.tag = parsed.tag;
    if (parsed.digest !== undefined) ref.digest = parsed.digest;
    const defaultName = defaultRepositoryName(parsed.domain, parsed.path);
    return { ref, defaultName, defaultNameFrom: `the source's repository ${quote(defaultName)}`, identity: `${parsed.domain}/${parsed.path}` };
  },
  describe: (ref) => `${ref.registry}/${ref.repository}${ref.tag !== undefined ? `:${ref.tag}` : ''}${ref.digest !== undefined ? `@${ref.digest}` : ''}`,
  open(ref, ctx) {
    const credentials = ctx.shared<CredentialStore>('registry:credentials', () =>
      loadCredentials({ env: ctx.env, warn: (message) => ctx.logger.warn(message) }),
    );
    // One client per registry origin: its token cache and learnt challenge serve every repository.
    const client = ctx.shared(`registry:client:${ref.insecure ? 'http' : 'https'}://${ref.apiHost}`, () =>
      new RegistryClient({
        registry: ref.registry,
        apiHost: ref.apiHost,
        insecure: ref.insecure,
        // Asked when the registry first asks for authentication (a credential helper runs then, once).
        credential: () => credentials.get(ref.registry),
        credentialProblem: () => credentials.helperProblem(ref.registry),
        dispatcher: ctx.dispatcher,
        maxRetries: ctx.http?.maxRetries,
        retryBaseMs: ctx.http?.retryBaseMs,
        headersTimeoutMs: ctx.http?.headersTimeoutMs,
        bodyTimeoutMs: ctx.http?.bodyTimeoutMs,
      }),
    );
    return new RegistrySource(client, ref.repository, ref.registry);
  },
};
