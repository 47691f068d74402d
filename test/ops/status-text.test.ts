// The human `status` text: every server with rack, liveness, blocks and a used-bytes bar,
// totals, racks, under-replicated blocks and operations. No processes.
import { describe, expect, it } from 'vitest';
import { formatStatus } from '../../cli/commands/status.ts';
import type { ClusterStatus } from '../../src/wire/protocol.ts';

describe('status text', () => {
  it('shows servers, bars, racks, under-replication and operations', () => {
    const now = 1_700_000_000_000;
    const s: ClusterStatus = {
      dataservers: [
        { id: 'ds-1', url: 'http://127.0.0.1:7001', rack: 'a', alive: true, blocks: 10, usedBytes: 4 << 20, freeBytes: 60 << 20, draining: false },
        { id: 'ds-2', url: 'http://127.0.0.1:7002', rack: 'b', alive: true, blocks: 5, usedBytes: 2 << 20, freeBytes: 62 << 20, draining: true },
        { id: 'ds-3', url: 'http://127.0.0.1:7003', rack: 'a', alive: false, blocks: 0, usedBytes: 0, freeBytes: 0, lastSeenMs: 120_000 },
      ],
      underReplicatedBlocks: 3,
      blocks: 8,
      replicas: 2,
      usedBytes: 6 << 20,
      freeBytes: 122 << 20,
      operations: [
        { id: 'op-abc-000001', kind: 'rebalance', state: 'running', startedAt: now - 5000, done: 3, total: 12, bytesDone: 3 << 20 },
        { id: 'op-abc-000002', kind: 'verify', state: 'done', startedAt: now - 60_000, finishedAt: now - 30_000, done: 8, total: 8, bytesDone: 0, message: '0 damaged' },
      ],
    };
    const text = formatStatus(s, now);
    expect(text).toMatch(/2 alive of 3/);
    expect(text).toMatch(/under-replicated blocks: 3/);
    const row = (id: string) => text.split('\n').find((l) => l.startsWith(id))!;
    expect(row('ds-1')).toMatch(/\ba\b.*alive.*10.*4\.0 MiB.*\[#{20}\]/);
    expect(row('ds-2')).toMatch(/draining.*\[#{10}-{10}\]/);
    expect(row('ds-3')).toMatch(/DEAD.*last seen 2 min ago/);
    expect(text).toMatch(/racks: a \(1\/2 alive, 4\.0 MiB\), b \(1\/1 alive, 2\.0 MiB\)/);
    expect(text).toMatch(/op-abc-000001 rebalance running .* 3\/12/);
    expect(text).toMatch(/op-abc-000002 verify +done/);
    expect(text).toMatch(/0 damaged/);
  });
});
