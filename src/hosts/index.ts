import { apache } from './apache.ts';
import { cloudflare } from './cloudflare.ts';
import type { Host } from './host.ts';
import { netlify } from './netlify.ts';
import { nginx } from './nginx.ts';
import { s3 } from './s3.ts';

// Every host registrish knows. A new host is one file beside this one and one entry here.

export const HOSTS: readonly Host[] = [netlify, cloudflare, nginx, apache, s3];

export function hostNamed(name: string): Host | undefined {
  return HOSTS.find((h) => h.name === name);
}

/** Hosts the build writes configuration for (the `hosts` option): all but those filled by `deploy`. */
export function writableHostNames(): string[] {
  return HOSTS.filter((h) => h.writer).map((h) => h.name);
}

export type { Host, HostCheck, HostFile, HostWriter } from './host.ts';
