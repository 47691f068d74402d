// "What the figures say": a short reading of the goals and the main gaps, written from the
// stored results so it never disagrees with the tables below it. The explanations come
// from the profile section and the designs of the parts.
import type { ResultsFile, Goal } from './results.ts';

function goalOf(r: ResultsFile, prefix: string): Goal | undefined {
  for (const s of Object.values(r.sections)) for (const g of s.goals) if (g.name.startsWith(prefix)) return g;
  return undefined;
}

const m = (g: Goal | undefined) => (!g ? 'not measured' : g.target === 'reported' ? String(g.measured) : `${g.measured} (goal ${g.target}: ${g.met === undefined ? 'not measured' : g.met ? 'met' : 'not met'})`);

function missShare(r: ResultsFile): string {
  const d = (r.sections.reads?.data as Record<string, Record<string, { rps: number }>> | undefined)?.['20 KB'];
  const hit = d?.hit?.rps;
  const miss = d?.miss?.rps;
  return hit && miss ? `${Math.round((miss / hit) * 100)}%` : 'an unmeasured share';
}

/** Coalesced against one-PUT-per-write replicated writes (replicas 2, fsync off), from the writes section's data. */
function coalescing(r: ResultsFile): string {
  const d = (r.sections.writes?.data as Record<string, Record<string, number[]>> | undefined)?.['fsync-off'];
  const batched = d?.r2;
  const single = d?.['r2-put'];
  if (!batched?.length || !single?.length) return 'was not compared in this run';
  const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
  const ratios = batched.slice(0, single.length).map((b, i) => b / single[i]!);
  const x = med(ratios);
  const reading = Math.abs(x - 1) < 0.1 ? 'within the rounds\' noise of each other' : x > 1 ? 'faster' : 'slower';
  return `ran at ${x.toFixed(2)}x the throughput (median of the per-round ratios: ${reading}). With one copy it saves data-server CPU per write (bench/cluster-write.ts: 217 against 261 µs); with two, the forwarded batch costs the replica as much as the PUTs it replaces, so on loopback, where a round trip costs nothing, it buys no rate here (dataserver/README.md, "Batch write frame")`;
}

export function renderAnalysis(r: ResultsFile): string {
  const out: string[] = ['## What the figures say', ''];
  const s = r.sections;
  if (s.reads) {
    out.push(`- **Reads.** A data server serves 20 KB files, read as the cluster client reads them (it checks the CRC end to end, so the server skips its own pass over the data; dataserver/README.md), at ${m(goalOf(r, 'data-server 20 KB reads vs bare Node ceiling, as the cluster client'))} of the bare Node ceiling and ${m(goalOf(r, 'data-server 20 KB reads vs nginx static'))} of nginx; with the server checking every byte (a reader without the header), ${m(goalOf(r, 'data-server 20 KB reads vs bare Node ceiling, the server checking'))} of bare Node. The ceiling is itself far below nginx on small files here (one Node thread against nginx's workers and sendfile). Two system-call paths are most of a Node read's CPU on this VM: the positioned read and the response's \`writev\` (~12 µs). Bare Node hands the read to libuv's thread pool, which costs its main thread ~11 µs per read; the data server reads hot records in place, a synchronous pread of a few µs from the page cache (dataserver/README.md, "Reads in place"), and against bare Node reading the same way it reaches ${m(goalOf(r, 'data-server 20 KB reads vs bare Node reading in place'))}. What remains of the gap is what a real server adds on top: decoding and checking the record, the cluster-secret check, the index lookup, more headers and per-request metrics (fid decode 0.1 µs, the route's metrics ~0.6 µs). Read buffers come from a pool: a fresh 20 KB buffer per read made V8 run full collections that took up to 17 % of the server's main thread in phases (bare Node's heap is too small for that to cost it much). The route runs ahead of fastify, one promise per read (see the profile). The origin's cache-hit path answers ${m(goalOf(r, 'origin cache hits'))} of nginx; a cache miss of a 20 KB original (block location cached, one data-server fetch) runs at ${missShare(r)} of a hit's rate.`);
  }
  if (s.writes) {
    out.push(`- **Writes.** Replicated writes (replicas 2, fsync off) reach ${m(goalOf(r, 'replicated writes (replicas 2, fsync off)'))} of nginx WebDAV PUT. A ugcfs write with 2 replicas crosses loopback TCP twice (client to primary, primary to replica) and is stored twice, where nginx's PUT does each once, and on this 2-core machine the client, the name server and three data servers share the CPU that nginx's two workers have to themselves. Three sessions moved this row. First V8's collector (with small heaps V8 started marking every ~200 ms in each data server and in the client; \`--initial-old-space-size=64\` on every ugcfs process and on this bench's own, and the index cache in typed arrays: 0.28x to about 0.4x). Then the JavaScript of the write path, found with perf and V8's inline-cache log (on Node 20 a quarter of V8's interrupt budget, assign batches of 100 fids, queued appends as one class, four coalesced batches in flight per block): more writes per second on the section's cluster, but the ratio stayed at 0.39-0.46x within its noise. Then the bytes: copying 20 KB into fresh page-cache pages cost 10-50 µs of kernel time on this VM (the hypervisor backs guest pages on first touch), paid once per copy, and it was the largest single cost left; direct appends write a group commit's whole pages with \`O_DIRECT\` around the page cache (dataserver/README.md, \`Direct appends\`), the data servers' system CPU per write fell from 210-236 to 80-103 µs, and the row went to 0.65x, 0.53x and 0.56x in the three 5-round runs after it (per round 0.47-0.76x). Removing the index's LevelDB writes altogether (an experiment, not a design) measured another 16-26 % before that change; batching them behind the acknowledgement (write-behind, as Haystack's index file is) recovered little of it and was not kept. The cluster client coalesces concurrent writes to one block into one batch request per hop (dataserver/README.md); against the same client sending one PUT per write it ${coalescing(r)}. The profile section shows where a data server's write time goes and times the two hops apart.`);
  }
  if (s.images) {
    out.push(`- **Images.** Resize misses run at ${m(goalOf(r, 'resize misses (jpeg'))} (JPEG out) and ${m(goalOf(r, 'resize misses (webp'))} (WebP out) of bare sharp — the origin adds a cache lookup, the fetch of the original (cached) and a bounded resize queue. nginx image_filter (libgd, full decode of every source) is several times slower than either. Variant cache hits, against nginx serving the same bytes with a worker per core: ${m(goalOf(r, 'origin variant cache hits vs nginx static (same bytes), --workers'))} with the origin's \`--workers\` at the same count, ${m(goalOf(r, 'origin variant cache hits vs nginx static (same bytes), one origin'))} as one process, whose hit path already runs at a bare Node server's rate (reads table, bare fastify).`);
  }
  if (s.scale) {
    out.push(`- **Scale.** Index ${m(goalOf(r, 'index bytes per file'))} per file; reopening 1M records takes ${m(goalOf(r, 'reopen of 1M'))} because opening reads per-block watermarks, not every index entry. p99 read latency at the largest size against 10k files: ${m(goalOf(r, 'p99 read latency at 1M files vs 10k (index cache off)') ?? goalOf(r, 'p99 read latency at'))} with the index cache off (every read a LevelDB lookup), ${m(goalOf(r, 'p99 read latency at 1M files vs 10k (index cache on') )} with the default cache. The name server's memory does not depend on the number of files. Until 2026-11-22 this ratio flipped between met and not met from run to run, for two reasons outside the index: this VM pages out file pages idle for ~30 s in regions of several MB, so at 1M files the sampled records were paged out with their neighbours and the 1M reads went to the disk (105 MiB in one 12-s run); and the p99 of one 12-s run moves by up to 2x with the machine's stalls. The section now locks each data server's files in memory and reports what they read from storage, and pools every latency of interleaved windows into one histogram per size; the per-round ratios printed beside the goal show how far a single round can still stray. What is left is the index's own growth, with the entry cache off: a LevelDB lookup costs more at 1M files than at 10k (p50 ~180 → ~225 µs), whose whole index fits in two small tables. LevelDB's block cache, 8 MiB by its default and 64 MiB by the data server's since 2026-11-22 (\`--index-block-cache-bytes\`), keeps the blocks those lookups decompress. In the pooled run before that default the cache-off ratio was 1.20x (default cache 1.07x); in the three after it, 1.14x, 1.06x and 1.03x (1.13x, 0.99x and 1.06x).`);
  }
  out.push('', 'Absolute figures on this machine are low and noisy (2 cores, see the load averages); read the ratios, each measured back to back in one run. Sub-millisecond p99s and the variant-hit ratio move by 10–20 % between runs: compare them over several runs before reading a trend into one.', '');
  return out.join('\n');
}
