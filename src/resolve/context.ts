// Messages from the layers below name a URL or a digest; the resolve stage adds the images.json entry.

/**
 * Errors from the layers below name a URL or a digest, not the images.json entry: prefix the
 * entry once, keeping the error's class, status and hint.
 */
export async function withContext<T>(context: string, work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (err) {
    if (err instanceof Error && !err.message.includes(context)) err.message = `${context}: ${err.message}`;
    throw err;
  }
}
