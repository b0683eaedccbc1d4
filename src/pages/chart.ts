import { formatBytes } from '../util/format.ts';
import { esc } from './html.ts';

// A small inline SVG of an image's layers, one segment per layer with its width proportional to
// its size: where the bytes of an image are, at a glance. The table beside it has the numbers.

export function layerChart(id: string, layers: ReadonlyArray<{ size: number }>): string {
  const total = layers.reduce((n, l) => n + l.size, 0);
  if (layers.length === 0 || total === 0) return '';
  const width = 600;
  const largest = layers.reduce((best, l, i) => (l.size > layers[best]!.size ? i : best), 0);
  const label = `${layers.length} layer${layers.length === 1 ? '' : 's'}, ${formatBytes(total)} in all; the largest is layer ${largest + 1} (${formatBytes(layers[largest]!.size)})`;
  let x = 0;
  const rects = layers.map((l, i) => {
    // At least a sliver, so a tiny layer still shows.
    const w = Math.max(1, (l.size / total) * width);
    const rect = `<rect class="bar${i % 2 ? ' alt' : ''}" x="${x.toFixed(1)}" y="0" width="${Math.max(0.5, w - 1).toFixed(1)}" height="20"><title>layer ${i + 1}: ${esc(formatBytes(l.size))}</title></rect>`;
    x += w;
    return rect;
  });
  return `<svg class="chart" role="img" aria-labelledby="${esc(id)}" viewBox="0 0 ${Math.ceil(x)} 20" width="${width}" height="20" xmlns="http://www.w3.org/2000/svg"><title id="${esc(id)}">${esc(label)}</title>${rects.join('')}</svg>`;
}
