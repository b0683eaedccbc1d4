import { HOSTS, hostNamed } from '../hosts/index.ts';
import { BREAKS, BREAKS_SHORT, GENERIC_FIXES, TITLES, rowStatus, type CheckRow, type ProblemKind } from './problems.ts';

// The result of `registrish check` and how it is shown: the counts, the fix for each kind of
// problem (the host's own when it has one), and the human-readable tables.

export interface CheckReport {
  url: string;
  /** Where the tags came from. */
  source: 'images' | 'catalog';
  quick: boolean;
  rows: CheckRow[];
  checks: number;
  failed: number;
  warnings: number;
}

export function summarize(url: string, source: CheckReport['source'], quick: boolean, rows: CheckRow[]): CheckReport {
  const statuses = rows.map(rowStatus);
  return {
    url,
    source,
    quick,
    rows,
    checks: rows.length,
    failed: statuses.filter((s) => s === 'fail').length,
    warnings: statuses.filter((s) => s === 'warn').length,
  };
}

/** How to fix `kind` on the named host; the generic fix when the host has none of its own (or no host is named). */
export function fixFor(kind: ProblemKind, hostName?: string): string {
  return (hostName === undefined ? undefined : hostNamed(hostName))?.fixes[kind] ?? GENERIC_FIXES[kind];
}

/** Human output: one table per section, then the fix for each kind of failure, then the summary. */
export function formatReport(report: CheckReport, hostName?: string): string {
  const host = hostName === undefined ? undefined : hostNamed(hostName);
  const lines: string[] = [];
  const sections = [...new Set(report.rows.map((r) => r.section))];
  const kinds: ProblemKind[] = [];
  for (const section of sections) {
    lines.push('', section === 'registry' ? 'registry' : `image ${section}`);
    for (const row of report.rows.filter((r) => r.section === section)) {
      const status = rowStatus(row);
      lines.push(`  ${status === 'ok' ? '✓' : status === 'fail' ? '✗' : '!'} ${row.label}`);
      for (const p of row.problems) {
        if (!kinds.includes(p.kind)) kinds.push(p.kind);
        const n = kinds.indexOf(p.kind) + 1;
        lines.push(`      ${p.severity === 'fail' ? '✗' : '!'} ${p.message} — breaks: ${BREAKS_SHORT[p.kind]} [${n}]`);
      }
    }
  }
  if (kinds.length) {
    const hint = ` (generic; --host ${HOSTS.map((h) => h.name).join('|')} for host-specific advice)`;
    lines.push('', `How to fix${host ? ` (${host.name})` : hint}:`);
    kinds.forEach((k, i) => lines.push(`  [${i + 1}] ${TITLES[k]}`, `      breaks: ${BREAKS[k]}`, `      fix: ${fixFor(k, host?.name)}`));
  }
  const verdict = report.failed ? 'FAIL' : 'OK';
  lines.push(
    '',
    `${verdict}: ${report.checks} check${report.checks === 1 ? '' : 's'}, ${report.failed} failed, ${report.warnings} with warnings${report.quick ? ' (--quick: every blob HEAD, a sample downloaded)' : ''}`,
  );
  return `${lines.join('\n')}\n`;
}
