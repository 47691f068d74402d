// The origin's view of storage: get/head/put/delete by fid. The production store wraps the
// cluster client (replicated writes, reads with failover); keeping this seam small lets the
// origin's own logic be unit-tested, while acceptance tests always run a real cluster.

export interface StoredFile {
  data: Buffer;
  mime: string;
  owner: string;
  /** ms since the epoch */
  uploadTime: number;
}

export interface FileInfo {
  size: number;
  mime: string;
  owner: string;
  uploadTime: number;
}

export interface FileStore {
  /** throws UGCFS_ERR_NOT_FOUND for a missing file or a wrong cookie */
  get(fid: string): Promise<StoredFile>;
  head(fid: string): Promise<FileInfo>;
  put(data: Buffer, meta: { mime: string; owner: string }): Promise<{ fid: string }>;
  delete(fid: string): Promise<void>;
  /** the fid a legacy path is mapped to */
  legacyGet(path: string): Promise<string | undefined>;
}

/** The slice of ClusterClient (src/clients/cluster-client.ts) the origin uses. */
export interface ClusterClientLike {
  write(data: Buffer, meta: { mime: string; owner: string }): Promise<{ fid: string }>;
  read(fid: string): Promise<{ data: Buffer; mime: string; owner: string; uploadTime: number }>;
  head(fid: string): Promise<{ size: number; mime: string; owner: string; uploadTime: number }>;
  delete(fid: string): Promise<unknown>;
  legacyGet(path: string): Promise<string | undefined>;
}

export function clusterFileStore(client: ClusterClientLike): FileStore {
  return {
    async get(fid) {
      const r = await client.read(fid);
      return { data: r.data, mime: r.mime, owner: r.owner, uploadTime: r.uploadTime };
    },
    async head(fid) {
      const r = await client.head(fid);
      return { size: r.size, mime: r.mime, owner: r.owner, uploadTime: r.uploadTime };
    },
    put: (data, meta) => client.write(data, meta),
    async delete(fid) {
      await client.delete(fid);
    },
    legacyGet: (path) => client.legacyGet(path),
  };
}
