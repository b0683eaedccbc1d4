#!/usr/bin/env bash
# Installs what the real-component tests (test/harness/) need, from Debian 12's packages:
#   docker-registry (distribution 2.8), skopeo, podman, containerd + ctr, dockerd + docker,
#   htpasswd (apache2-utils), openssl, tar/gzip, and the static servers the host writers are
#   tested on: nginx (nginx-light) and Apache 2.4 (apache2, which also ships /etc/apache2/magic),
#   and Chromium, the browser the site's pages are tested in (driven by playwright-core).
# Idempotent: does nothing when every command is already there. Starts no service (a
# temporary policy-rc.d keeps the packages' init scripts from starting registry/containerd/docker).
set -euo pipefail

# command -> Debian package
declare -A PKG_OF=(
  [docker-registry]=docker-registry
  [skopeo]=skopeo
  [podman]=podman
  [ctr]=containerd
  [containerd]=containerd
  [runc]=runc
  [dockerd]=docker.io
  [docker]=docker.io
  [htpasswd]=apache2-utils
  [openssl]=openssl
  [tar]=tar
  [gzip]=gzip
  [nginx]=nginx-light
  [apache2]=apache2
  [chromium]=chromium
)
# Always installed together with the above when something is missing. Pulling as root with
# --storage-driver vfs needs none of podman's Recommends (uidmap, fuse-overlayfs, slirp4netns,
# catatonit, buildah); its Depends bring conmon, crun|runc and containers-common; netavark is
# named so that containers-common's virtual container-network-stack is satisfied predictably.
EXTRA_PKGS=(golang-github-containers-common netavark conmon crun ca-certificates)

export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

missing_cmds=()
for cmd in "${!PKG_OF[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing_cmds+=("$cmd")
done
# The docker CLI on PATH may be a different (newer) one; the harness prefers Debian's /usr/bin/docker.
if [[ ! -x /usr/bin/docker ]] && ! printf '%s\n' "${missing_cmds[@]:-}" | grep -qx docker; then
  missing_cmds+=(docker)
fi

if [[ ${#missing_cmds[@]} -eq 0 ]]; then
  echo "install-test-deps: all test dependencies present"
else
  declare -A want=()
  for cmd in "${missing_cmds[@]}"; do want[${PKG_OF[$cmd]}]=1; done
  pkgs=("${!want[@]}" "${EXTRA_PKGS[@]}")
  echo "install-test-deps: missing commands: ${missing_cmds[*]}"
  if [[ $(id -u) -ne 0 ]]; then
    echo "install-test-deps: ERROR: must run as root to install them; run as root:" >&2
    echo "  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${pkgs[*]}" >&2
    exit 1
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-test-deps: ERROR: apt-get not found (Debian 12 expected); install: ${pkgs[*]}" >&2
    exit 1
  fi

  # Keep package scripts from starting services (docker-registry on :5000, containerd, dockerd,
  # nginx and apache2 on :80: the tests start their own on loopback ports).
  created_policy=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    created_policy=1
  fi
  cleanup() { if [[ $created_policy -eq 1 ]]; then rm -f /usr/sbin/policy-rc.d; fi; }
  trap cleanup EXIT

  echo "install-test-deps: apt-get install ${pkgs[*]}"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${pkgs[@]}"

  still=()
  for cmd in "${missing_cmds[@]}"; do
    if [[ $cmd == docker ]]; then [[ -x /usr/bin/docker ]] || still+=("$cmd"); continue; fi
    command -v "$cmd" >/dev/null 2>&1 || still+=("$cmd")
  done
  if [[ ${#still[@]} -gt 0 ]]; then
    echo "install-test-deps: ERROR: still missing after install: ${still[*]}" >&2
    exit 1
  fi
fi

# Versions, for the log.
{
  docker-registry --version
  skopeo --version
  podman --version
  containerd --version
  dockerd --version
  nginx -v 2>&1
  apache2 -v | head -1
  chromium --version
  openssl version
} 2>/dev/null | sed 's/^/install-test-deps: /' || true
