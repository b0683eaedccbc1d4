// Types of loader.js (plain JavaScript: it must run before any TypeScript can).
export const HASH_FILE: string;
export function sourceHash(srcDir: string): Promise<string>;
export function distIsCurrent(root?: string): Promise<boolean>;
export function loadEntry(entry: 'index' | 'cli', root?: string): Promise<{ module: Record<string, any>; from: 'dist' | 'src' }>;
