// Where the build's messages go: the Eleventy logger (with the plugin's prefix), the console, or a test.

export interface Logger {
  info(message: string): void;
  warn(message: string): void;
}

/** Drops everything (scripts that only want the result). */
export const silentLogger: Logger = { info() {}, warn() {} };
