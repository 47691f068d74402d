// <data>/cluster, the data server's record of its cluster and high-water marks
// (dataserver/cluster-identity.ts): bytes pinned, marks only go up, a stored cluster id
// never changes, and a damaged file stops the data server at start (exit 2) instead of
// letting it join whatever cluster answers first.
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ClusterIdentity, decodeClusterFile, encodeClusterFile } from '../../dataserver/cluster-identity.ts';
import { run, tempDir } from '../helpers/proc.ts';

const tmp = tempDir('ugcfs-cluster-file-');
afterAll(() => tmp.cleanup());

const GOLDEN = 'ugcfs-cluster 1\ncluster c-0123456789abcdef\nblock-ids 33 s-fedcba9876543210\nkeys 20001 s-fedcba9876543210\ncrc 962c8f49\n';

describe('the cluster file, version 1', () => {
  it('has the golden bytes of the layout comment', () => {
    const content = { cluster: 'c-0123456789abcdef', blockIds: { upTo: 33n, state: 's-fedcba9876543210' }, keys: { upTo: 20001n, state: 's-fedcba9876543210' } };
    const bytes = encodeClusterFile(content);
    expect(bytes.toString('latin1')).toBe(GOLDEN);
    expect(decodeClusterFile(bytes)).toEqual(content);
    // before any cluster: "-" for the id and for marks derived from blocks held
    const none = { cluster: undefined, blockIds: { upTo: 8n, state: '' }, keys: { upTo: 0n, state: '' } };
    expect(encodeClusterFile(none).toString('latin1')).toMatch(/^ugcfs-cluster 1\ncluster -\nblock-ids 8 -\nkeys 0 -\ncrc [0-9a-f]{8}\n$/);
    expect(decodeClusterFile(encodeClusterFile(none))).toEqual(none);
  });

  it('refuses a damaged or unknown file', () => {
    const flipped = Buffer.from(GOLDEN.replace('block-ids 33', 'block-ids 13'), 'latin1');
    expect(() => decodeClusterFile(flipped)).toThrow(/crc mismatch/);
    expect(() => decodeClusterFile(Buffer.from(GOLDEN.replace('ugcfs-cluster 1', 'ugcfs-cluster 2')))).toThrow(/version/);
    expect(() => decodeClusterFile(Buffer.from(GOLDEN.slice(0, -1)))).toThrow();
    expect(() => decodeClusterFile(Buffer.from(''))).toThrow();
  });

  it('stores the first cluster id for good and only raises the marks, atomically', async () => {
    const dir = join(tmp.dir, 'raise');
    mkdirSync(dir);
    const id = await ClusterIdentity.load(dir);
    expect(id.cluster).toBeUndefined();
    await id.update({ blockIds: { upTo: 5n, state: '' } });
    expect(readFileSync(join(dir, 'cluster'), 'latin1')).toContain('cluster -\nblock-ids 5 -\n');
    await id.update({ cluster: 'c-aaaaaaaaaaaaaaaa', blockIds: { upTo: 17n, state: 's-1' }, keys: { upTo: 10001n, state: 's-1' } });
    await id.update({ cluster: 'c-bbbbbbbbbbbbbbbb', blockIds: { upTo: 9n, state: 's-2' }, keys: { upTo: 20001n, state: 's-2' } });
    const back = await ClusterIdentity.load(dir);
    expect(back.cluster).toBe('c-aaaaaaaaaaaaaaaa');
    expect(back.highWater()).toEqual({ blockIds: { upTo: '17', state: 's-1' }, keys: { upTo: '20001', state: 's-2' } });
    expect(readdirSync(dir)).toEqual(['cluster']);
  });

  it('a data server with a damaged cluster file does not start (exit 2, one line)', async () => {
    const dir = join(tmp.dir, 'damaged');
    mkdirSync(dir);
    writeFileSync(join(dir, 'cluster'), GOLDEN.replace('c-0123', 'c-9123'));
    const r = await run(['dataserver', '--data', dir, '--port', '0', '--nameserver', 'http://127.0.0.1:9']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('is not a valid cluster file');
    expect(r.stderr.trim().split('\n').filter((l) => l.startsWith('ugcfs'))).toHaveLength(1);
  });
});
