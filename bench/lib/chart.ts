// Small line charts drawn as SVG by hand and rasterised with sharp (librsvg), so the
// scale curves land in docs/ as a PNG without a plotting dependency.
import sharp from 'sharp';

export interface Series {
  name: string;
  values: (number | undefined)[];
  color: string;
  dashed?: boolean;
}

export interface Panel {
  title: string;
  yLabel: string;
  xLabels: string[];
  series: Series[];
  /** y axis starts at 0 (default) */
  zero?: boolean;
}

const W = 460;
const H = 300;
const M = { l: 64, r: 44, t: 34, b: 70 };

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 1.2, 1.6, 2, 3, 4, 6, 8, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function fmt(v: number): string {
  if (v >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
  if (v >= 1e3) return `${+(v / 1e3).toFixed(1)}k`;
  return `${+v.toFixed(v < 10 ? 2 : 0)}`;
}

function panelSvg(p: Panel): string {
  const pw = W - M.l - M.r;
  const ph = H - M.t - M.b;
  const all = p.series.flatMap((s) => s.values.filter((v): v is number => v !== undefined && Number.isFinite(v)));
  const max = niceMax(Math.max(...all, 0));
  const x = (i: number) => M.l + (p.xLabels.length === 1 ? pw / 2 : (i * pw) / (p.xLabels.length - 1));
  const y = (v: number) => M.t + ph - (v / max) * ph;
  const out: string[] = [`<rect width="${W}" height="${H}" fill="white"/>`, `<text x="${W / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${esc(p.title)}</text>`];
  for (let k = 0; k <= 4; k++) {
    const v = (max * k) / 4;
    out.push(`<line x1="${M.l}" x2="${M.l + pw}" y1="${y(v)}" y2="${y(v)}" stroke="#ddd"/>`, `<text x="${M.l - 6}" y="${y(v) + 4}" text-anchor="end" font-size="11">${fmt(v)}</text>`);
  }
  p.xLabels.forEach((l, i) => out.push(`<text x="${x(i)}" y="${M.t + ph + 16}" text-anchor="middle" font-size="11">${esc(l)}</text>`));
  out.push(`<text transform="translate(14 ${M.t + ph / 2}) rotate(-90)" text-anchor="middle" font-size="11">${esc(p.yLabel)}</text>`);
  out.push(`<line x1="${M.l}" x2="${M.l}" y1="${M.t}" y2="${M.t + ph}" stroke="#333"/>`, `<line x1="${M.l}" x2="${M.l + pw}" y1="${M.t + ph}" y2="${M.t + ph}" stroke="#333"/>`);
  p.series.forEach((s, si) => {
    const pts = s.values.map((v, i) => (v === undefined || !Number.isFinite(v) ? undefined : `${x(i).toFixed(1)},${y(v).toFixed(1)}`));
    const defined = pts.filter((q): q is string => q !== undefined);
    if (defined.length > 1) out.push(`<polyline points="${defined.join(' ')}" fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`);
    for (const q of defined) {
      const [cx, cy] = q.split(',');
      out.push(`<circle cx="${cx}" cy="${cy}" r="3.5" fill="${s.color}"/>`);
    }
    const lx = M.l + (si % 2) * (pw / 2);
    const ly = M.t + ph + 34 + Math.floor(si / 2) * 16;
    out.push(`<line x1="${lx}" x2="${lx + 18}" y1="${ly - 4}" y2="${ly - 4}" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ''}/>`, `<text x="${lx + 24}" y="${ly}" font-size="11">${esc(s.name)}</text>`);
  });
  return out.join('\n');
}

/** Lays panels out in a grid of `cols` columns. */
export function chartSvg(panels: Panel[], cols = 2): string {
  const rows = Math.ceil(panels.length / cols);
  const body = panels.map((p, i) => `<g transform="translate(${(i % cols) * W} ${Math.floor(i / cols) * H})">${panelSvg(p)}</g>`).join('\n');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${cols * W}" height="${rows * H}" font-family="DejaVu Sans, sans-serif">\n${body}\n</svg>\n`;
}

export async function writeChartPng(svg: string, path: string): Promise<void> {
  await sharp(Buffer.from(svg)).png().toFile(path);
}
