// One data server's own copy of a file, read straight off that server (GET /needles/<fid>
// with the cluster secret), past the cluster client's fail-over: what tests check after a
// repair, a half-applied write or delete, or a batch, where which copy holds what matters.
import { callRaw } from '../../src/clients/http-client.ts';
import { DS_ROUTES, HEADERS } from '../../src/wire/protocol.ts';

export interface NeedleCopy {
  status: number;
  body: Buffer;
  mime?: string;
  owner?: string;
  uploadTime?: string;
}

export async function readCopy(dsUrl: string, fid: string, secret: string, opts: { timeoutMs?: number } = {}): Promise<NeedleCopy> {
  const res = await callRaw(dsUrl + DS_ROUTES.needle.replace(':fid', fid), { secret, timeoutMs: opts.timeoutMs });
  const h = (n: string) => res.headers[n] as string | undefined;
  return { status: res.status, body: res.body, mime: h('content-type'), owner: h(HEADERS.owner), uploadTime: h(HEADERS.uploadTime) };
}

/**
 * Does this server hold a live copy? 200 yes, 404 no; any other answer throws, so a server
 * in trouble (5xx, refused secret) is never taken for one that lacks the file.
 */
export async function holdsCopy(dsUrl: string, fid: string, secret: string, opts: { timeoutMs?: number } = {}): Promise<boolean> {
  const { status, body } = await readCopy(dsUrl, fid, secret, opts);
  if (status !== 200 && status !== 404) throw new Error(`GET ${fid} on ${dsUrl}: HTTP ${status} ${body.toString('utf8').slice(0, 200)}`);
  return status === 200;
}
