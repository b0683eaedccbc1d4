import { RegistrishError } from '../util/errors.ts';
import { quote } from '../util/format.ts';
import { characterProblem } from './characters.ts';
import type { Platform } from './descriptor.ts';

// Platforms: `os/arch[/variant]` as users write them in images.json, and matching them against an
// index's entries the way containerd does (aliases and default variants).

/** A parsed `os/arch[/variant]` from images.json. */
export interface PlatformFilter {
  os: string;
  architecture: string;
  variant?: string;
}

/** `os/arch[/variant]`, lowercase. */
export const PLATFORM_PATTERN = '[a-z0-9][a-z0-9._-]*/[a-z0-9][a-z0-9._-]*(?:/[a-z0-9][a-z0-9._-]*)?';
export const PLATFORM_ALLOWED = 'allowed: os/arch[/variant] in lowercase, e.g. linux/amd64, linux/arm64, linux/arm/v7';
const platformPartRe = /^[a-z0-9][a-z0-9._-]*$/;

/** Why `s` is not an `os/arch[/variant]` platform, or undefined when it is. */
export function platformProblem(s: string): string | undefined {
  if (s === '') return 'it is empty';
  const chars = characterProblem(s);
  if (chars) return chars;
  const parts = s.split('/');
  if (parts.length < 2) return 'it needs at least os/arch';
  if (parts.length > 3) return 'it has more than three parts';
  if (parts.includes('')) return 'it has an empty part';
  if (s.toLowerCase() !== s) return 'it must be lowercase';
  const bad = parts.find((p) => !platformPartRe.test(p));
  if (bad !== undefined) return `its part "${bad}" may only contain lowercase letters, digits, ".", "_" and "-"`;
  return undefined;
}

/** Parses `os/arch[/variant]`, e.g. `linux/arm64` or `linux/arm/v7`. */
export function parsePlatform(s: string): PlatformFilter {
  const problem = platformProblem(s);
  if (problem !== undefined) throw new RegistrishError(`${quote(s)} is not a valid platform: ${problem} (${PLATFORM_ALLOWED})`);
  const [os, architecture, variant] = s.split('/') as [string, string, string?];
  return variant === undefined ? { os, architecture } : { os, architecture, variant };
}

export function formatPlatform(p: PlatformFilter): string {
  return `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;
}

/** containerd's normalizeArch: aliases and default variants, so `arm64` ≡ `arm64/v8`, `arm` ≡ `arm/v7`. */
function normalizeArch(architecture: string, variant: string | undefined): [string, string] {
  const arch = architecture.toLowerCase();
  const v = (variant ?? '').toLowerCase();
  switch (arch) {
    case 'i386':
      return ['386', ''];
    case 'x86_64':
    case 'x86-64':
    case 'amd64':
      return ['amd64', v === 'v1' ? '' : v];
    case 'aarch64':
    case 'arm64':
      return ['arm64', v === '8' || v === 'v8' || v === 'v8.0' ? '' : v];
    case 'armhf':
      return ['arm', 'v7'];
    case 'armel':
      return ['arm', 'v6'];
    case 'arm':
      if (v === '' || v === '7') return ['arm', 'v7'];
      if (v === '5' || v === '6' || v === '8') return ['arm', `v${v}`];
      return ['arm', v];
    default:
      return [arch, v];
  }
}

/** Does an index entry's platform match a filter from images.json (after containerd's normalization)? */
export function platformMatches(filter: PlatformFilter, platform: Platform | PlatformFilter): boolean {
  if (filter.os.toLowerCase() !== platform.os.toLowerCase()) return false;
  const [fa, fv] = normalizeArch(filter.architecture, filter.variant);
  const [pa, pv] = normalizeArch(platform.architecture, platform.variant);
  return fa === pa && fv === pv;
}

/** A canonical key for a platform, equal for platforms that match each other. */
export function platformKey(p: PlatformFilter): string {
  const [arch, variant] = normalizeArch(p.architecture, p.variant);
  return `${p.os.toLowerCase()}/${arch}${variant ? `/${variant}` : ''}`;
}

