// What the name-server scale bench reads off the name server process besides its API: its
// memory after a full garbage collection (forced through the inspector port it was started
// with, then read from its own /metrics: prom-client's heap-used and external-memory gauges), and the
// block records written straight into its LevelDB state with its own store code.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { WebSocket } from 'undici';
import type { BlockRecord } from '../../nameserver/block-map.ts';
import { LevelMetadataStore, type NamespaceBatchOp } from '../../nameserver/metadata-store/index.ts';
import { openStateDb } from '../../nameserver/state-db.ts';
import { holdersOf, REPLICAS, simId, type Layout } from './ns-scale-layout.ts';

/** A full GC in the process listening for the inspector on `port` (HeapProfiler.collectGarbage). */
export async function collectGarbage(port: number): Promise<void> {
  const targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as Array<{ webSocketDebuggerUrl?: string }>;
  const url = targets.find((t) => t.webSocketDebuggerUrl)?.webSocketDebuggerUrl;
  if (!url) throw new Error(`no inspector target on port ${port}`);
  const ws = new WebSocket(url);
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('inspector: no answer to collectGarbage in 60 s')), 60_000);
      ws.addEventListener('error', () => reject(new Error('inspector connection failed')));
      ws.addEventListener('open', () => ws.send(JSON.stringify({ id: 1, method: 'HeapProfiler.collectGarbage' })));
      ws.addEventListener('message', (ev) => {
        const m = JSON.parse(String(ev.data)) as { id?: number; error?: { message: string } };
        if (m.id !== 1) return;
        clearTimeout(timer);
        if (m.error) reject(new Error(`inspector: ${m.error.message}`));
        else resolve();
      });
    });
  } finally {
    ws.close();
  }
}

/** A gauge or counter of the name server's /metrics, summed over the series whose labels include `label`; undefined when absent. */
export async function metric(nsUrl: string, name: string, label = ''): Promise<number | undefined> {
  const text = await (await fetch(`${nsUrl}/metrics`)).text();
  let sum: number | undefined;
  for (const m of text.matchAll(new RegExp(`^${name}(\\{[^}]*\\})? (\\S+)$`, 'gm'))) {
    if ((m[1] ?? '').includes(label)) sum = (sum ?? 0) + Number(m[2]);
  }
  return sum;
}

/** The name server's metric lines whose names start with `prefix` (comments left out), for a log. */
export async function metricLines(nsUrl: string, prefix: string): Promise<string> {
  const text = await (await fetch(`${nsUrl}/metrics`)).text();
  return text.split('\n').filter((l) => l.startsWith(prefix)).join('; ');
}

/**
 * What the name server's memory holds now, from prom-client's default metrics (the roles
 * prefix theirs ugcfs_process_): the JavaScript heap in use, and the memory outside it that
 * V8 accounts for — typed arrays' buffers among it, where compact tables keep their data.
 */
export async function memoryNow(nsUrl: string): Promise<{ heap: number; external: number }> {
  const heap = await metric(nsUrl, 'ugcfs_process_nodejs_heap_size_used_bytes');
  const external = await metric(nsUrl, 'ugcfs_process_nodejs_external_memory_bytes');
  if (heap === undefined || external === undefined) throw new Error("no ugcfs_process_nodejs_heap_size_used_bytes / _external_memory_bytes in the name server's /metrics");
  return { heap, external };
}

/** `samples` readings, each right after a full GC; the one with the least heap + external memory: what stays live. */
export async function liveMemory(nsUrl: string, inspectPort: number, samples = 3): Promise<{ heap: number; external: number }> {
  let best: { heap: number; external: number } | undefined;
  for (let i = 0; i < samples; i++) {
    await collectGarbage(inspectPort);
    const m = await memoryNow(nsUrl);
    if (!best || m.heap + m.external < best.heap + best.external) best = m;
    await new Promise((r) => setTimeout(r, 300));
  }
  return best!;
}

/** Block `id` of the layout as the name server persists it: sealed, replicas 2, on its two simulated servers. */
export function layoutRecord(id: number, layout: Layout, createdAt: number): BlockRecord {
  const [p, q] = holdersOf(id, layout.servers);
  return { id, replication: REPLICAS, state: 'sealed', replicas: [simId(p), simId(q)], createdAt };
}

/**
 * Writes the layout's block records (sealed, replicas 2, on their two simulated servers)
 * into a stopped name server's state (<data>/state) through its metadata store, in the shape
 * the name server persists (nameserver/block-map.ts BlockRecord, namespace 'blocks', key the
 * decimal id), and moves the block-id sequence past them as nameserver/sequence.ts stores it
 * (meta 'nextBlockId': where the next start resumes).
 */
export async function seedBlocks(dataDir: string, layout: Layout, createdAt: number): Promise<void> {
  const db = await openStateDb(join(dataDir, 'state'));
  try {
    const store = LevelMetadataStore.wrap(db);
    const blocks = store.namespace<BlockRecord>('blocks');
    const meta = store.namespace<string>('meta');
    const BATCH = 4096;
    for (let from = 1; from <= layout.blocks; from += BATCH) {
      const ops: Array<NamespaceBatchOp<BlockRecord>> = [];
      for (let id = from; id < Math.min(layout.blocks + 1, from + BATCH); id++) {
        ops.push({ type: 'put', key: String(id), value: layoutRecord(id, layout, createdAt) });
      }
      // unsynced, not atomic: a seed interrupted is redone from scratch
      await blocks.batch(ops, { atomic: false, sync: false });
    }
    const stored = await meta.get('nextBlockId');
    if (stored === undefined || BigInt(stored) <= BigInt(layout.blocks)) await meta.put('nextBlockId', String(layout.blocks + 1));
  } finally {
    await db.close();
  }
}

/** A process's resident set size, bytes (/proc/<pid>/status). */
export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : Number.NaN;
}
