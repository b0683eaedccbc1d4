// Debian's Chromium driven by playwright-core (its own browser download does not work here).
// scripts/install-test-deps.sh installs the package; a missing browser is an error saying so.
import fs from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

export async function launchChromium(): Promise<Browser> {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run scripts/install-test-deps.sh as root (Debian: apt-get install -y chromium)`);
  return chromium.launch({
    executablePath: CHROMIUM,
    // As root in a sandboxless VM; and no background connections (this machine's network is closed).
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}
