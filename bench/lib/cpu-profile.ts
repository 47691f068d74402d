// Reads V8 .cpuprofile files (node --cpu-prof) and says where the time went: self time per
// function and per component (a ugcfs module, a dependency, node core, GC), so the
// profile section can name hot spots without a GUI.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './spawn.ts';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface CpuProfile {
  startTime: number;
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface Hotspot {
  name: string;
  component: string;
  selfMs: number;
  share: number;
}

export interface ProfileSummary {
  totalMs: number;
  /** time not idle */
  busyMs: number;
  functions: Hotspot[];
  components: { component: string; selfMs: number; share: number }[];
}

function component(url: string, fn: string): string {
  if (!url) return fn.startsWith('(') ? fn : 'native';
  if (url.startsWith('node:')) return `node core (${url.slice(5).split('/')[1] ?? url.slice(5)})`;
  const nm = url.lastIndexOf('node_modules/');
  if (nm >= 0) {
    const rest = url.slice(nm + 13).split('/');
    return rest[0]!.startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0]!;
  }
  const local = url.replace(/^file:\/\//, '');
  if (local.startsWith(ROOT + '/')) return local.slice(ROOT.length + 1);
  return local;
}

/** The monotonic clock V8 stamps profiles with (CLOCK_MONOTONIC, as process.hrtime), in µs. */
export function nowUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

/**
 * Merges every .cpuprofile in dir (one per process) into one summary. With a window, only
 * samples taken while the load ran count, so start-up (module loading) is left out.
 */
export function summarizeProfiles(dir: string, window?: { fromUs: number; toUs: number }, top = 60): ProfileSummary | undefined {
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
  if (files.length === 0) return undefined;
  const byFn = new Map<string, { component: string; ms: number }>();
  const byComp = new Map<string, number>();
  let total = 0;
  let idle = 0;
  for (const f of files) {
    const p = JSON.parse(readFileSync(join(dir, f), 'utf8')) as CpuProfile;
    const nodes = new Map(p.nodes.map((n) => [n.id, n]));
    let t = p.startTime;
    for (let i = 0; i < p.samples.length; i++) {
      t += p.timeDeltas[i] ?? 0;
      if (window && (t < window.fromUs || t > window.toUs)) continue;
      const ms = (p.timeDeltas[i] ?? 0) / 1000;
      const n = nodes.get(p.samples[i]!);
      if (!n) continue;
      total += ms;
      const { functionName, url, lineNumber } = n.callFrame;
      if (functionName === '(idle)') { idle += ms; continue; }
      const comp = component(url, functionName);
      const name = `${functionName || '(anonymous)'}${url ? ` ${comp.includes('/') || comp.endsWith('.ts') ? comp : url.split('/').pop()}:${lineNumber + 1}` : ''}`;
      const e = byFn.get(name) ?? { component: comp, ms: 0 };
      e.ms += ms;
      byFn.set(name, e);
      byComp.set(comp, (byComp.get(comp) ?? 0) + ms);
    }
  }
  const busy = total - idle;
  return {
    totalMs: total,
    busyMs: busy,
    functions: [...byFn].sort((a, b) => b[1].ms - a[1].ms).slice(0, top).map(([name, e]) => ({ name, component: e.component, selfMs: e.ms, share: e.ms / busy })),
    components: [...byComp].sort((a, b) => b[1] - a[1]).slice(0, top).map(([component, ms]) => ({ component, selfMs: ms, share: ms / busy })),
  };
}
