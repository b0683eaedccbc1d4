// Docker Hub: its names. One registry with many spellings, whose API lives on another host.

/** The name users and credentials use for Docker Hub. */
export const DOCKER_HUB = 'docker.io';
/** Where its HTTP API lives. */
export const DOCKER_HUB_API = 'registry-1.docker.io';
/** The old spelling that Docker itself rewrites to docker.io in references. */
export const LEGACY_DOCKER_HUB = 'index.docker.io';
/** The server address docker's clients use for Docker Hub (`docker login` keys, credential helpers). */
export const DOCKER_HUB_SERVER = `https://${LEGACY_DOCKER_HUB}/v1/`;
/** Other spellings of Docker Hub (`docker login` keys, old references). */
export const DOCKER_HUB_ALIASES: ReadonlySet<string> = new Set([
  DOCKER_HUB,
  LEGACY_DOCKER_HUB,
  DOCKER_HUB_API,
  'registry.hub.docker.com',
  'hub.docker.com',
]);
/** Where Docker Hub's official images live: `alpine` is `library/alpine`. */
export const OFFICIAL_PREFIX = 'library/';

/** Is this host (lower-cased, no scheme) Docker Hub? */
export function isDockerHub(host: string): boolean {
  return DOCKER_HUB_ALIASES.has(host.toLowerCase());
}
