// A write whose file id is known before any byte is sent, so migrate can journal it first:
// if migrate is killed while the data servers are still appending (they finish the write
// whether or not the client is alive to hear the answer), the rerun finds the fid in the
// journal and reuses the copy instead of storing the file a second time. ClusterClient's
// write assigns and sends in one call, so the first attempt is made here with the same
// headers it sends; any failure falls back to ClusterClient.write and its retries.
// (Replace with a ClusterClient "assigned" callback once it has one.)
import { crc32c } from '@node-rs/crc32';
import type { ClusterClient } from '../../src/cluster-client.ts';
import { callJson, callRaw, expectOk } from '../../src/http-client.ts';
import { DS_ROUTES, HEADERS, NS_ROUTES, type AssignResult } from '../../src/protocol.ts';

export interface JournaledWriteOptions {
  nameserver: string;
  secret: string;
  timeoutMs: number;
}

export async function journaledWrite(
  client: ClusterClient,
  opts: JournaledWriteOptions,
  data: Buffer,
  meta: { mime: string; owner: string },
  onAssigned: (fid: string) => void,
): Promise<string> {
  const call = { timeoutMs: opts.timeoutMs, ...(opts.secret ? { secret: opts.secret } : {}) };
  try {
    const a = await callJson<AssignResult>(opts.nameserver.replace(/\/+$/, '') + NS_ROUTES.assign, { ...call, method: 'POST', body: {} });
    const [primary, ...peers] = a.replicas;
    if (primary) {
      onAssigned(a.fid);
      const headers: Record<string, string> = { [HEADERS.mime]: meta.mime, [HEADERS.owner]: meta.owner, [HEADERS.crc]: String(crc32c(data)) };
      if (peers.length > 0) headers[HEADERS.replicas] = peers.map((p) => p.url).join(',');
      expectOk(await callRaw(primary.url + DS_ROUTES.needle.replace(':fid', a.fid), { ...call, method: 'PUT', body: data, headers }));
      return a.fid;
    }
  } catch {
    // Fall through: the client's write retries on other blocks and reports bad ones.
  }
  const w = await client.write(data, meta);
  onAssigned(w.fid);
  return w.fid;
}
