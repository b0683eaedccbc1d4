import { discard, firstHeader, type ResponseHeaders } from '../http/response.ts';
import { fail, type CheckRow } from './problems.ts';
import type { Got } from './probe.ts';

// What every answer is held to, manifest or blob: a HEAD that answers 200, and no Content-Encoding.

/** The headers of a HEAD that answered 200 with an acceptable encoding, or undefined once `row` has failed. */
export async function headAnswer(row: CheckRow, head: Got): Promise<ResponseHeaders | undefined> {
  if ('error' in head) return void fail(row, head.kind, head.error);
  await discard(head.body);
  if (head.status !== 200) return void fail(row, 'status', `answered ${head.status} (expected 200)`);
  checkEncoding(row, head.headers);
  return head.headers;
}

/** Every request asks for identity: a Content-Encoding is the host labelling the stored bytes. */
export function checkEncoding(row: CheckRow, headers: ResponseHeaders): void {
  const enc = firstHeader(headers, 'content-encoding');
  if (enc !== undefined && enc.trim().toLowerCase() !== 'identity' && enc.trim() !== '') {
    fail(row, 'content-encoding', `Content-Encoding: ${enc} although we asked for identity`);
  }
}

/** A site's HTML page where registry content was expected (a catch-all fallback, an error page). */
export function looksLikeHtml(text: string): boolean {
  return /^\s*(<!doctype html|<html|<head|<body)/iu.test(text);
}
