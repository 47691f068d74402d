// The metric vocabulary, declared once. Every server instance gets its own registry (the
// all-in-one process runs several servers), and roles register only the groups they use.
import client from 'prom-client';

export type Registry = client.Registry;

function make(registry: client.Registry) {
  const r = [registry];
  return {
    // every server
    httpRequests: new client.Counter({ name: 'ugcfs_http_requests_total', help: 'HTTP requests answered', labelNames: ['route', 'method', 'status'], registers: r }),
    httpDuration: new client.Histogram({ name: 'ugcfs_http_request_duration_seconds', help: 'HTTP request latency', labelNames: ['route', 'method'], buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: r }),
    // data server
    needleReads: new client.Counter({ name: 'ugcfs_needle_reads_total', help: 'Needle reads served from block files', registers: r }),
    blockPreads: new client.Counter({ name: 'ugcfs_block_preads_total', help: 'Positioned reads issued against block files for needle reads (one per read proves the one-disk-read path)', registers: r }),
    syncPreads: new client.Counter({ name: 'ugcfs_block_sync_preads_total', help: 'Of those, reads done in place with a synchronous pread on the event loop (dataserver/README.md, "Reads in place")', registers: r }),
    syncReadPauses: new client.Counter({ name: 'ugcfs_block_sync_read_pauses_total', help: 'Pauses of reads in place: two in a row were slower than a page-cache copy, so reads went to the thread pool for a while', registers: r }),
    indexLookups: new client.Counter({ name: 'ugcfs_index_lookups_total', help: 'Index lookups for needle reads', labelNames: ['source'], registers: r }),
    needleWrites: new client.Counter({ name: 'ugcfs_needle_writes_total', help: 'Needles appended', labelNames: ['kind'], registers: r }),
    fsyncs: new client.Counter({ name: 'ugcfs_fsyncs_total', help: 'Group-commit fsyncs of block files', registers: r }),
    groupCommitSize: new client.Histogram({ name: 'ugcfs_group_commit_records', help: 'Records made durable per fsync', buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256], registers: r }),
    writeBatchRecords: new client.Histogram({ name: 'ugcfs_write_batch_records', help: 'Records per needle batch request received (client batches and forwards)', buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256], registers: r }),
    checksumFailures: new client.Counter({ name: 'ugcfs_checksum_failures_total', help: 'Records whose CRC32-C did not match', registers: r }),
    bytesStored: new client.Gauge({ name: 'ugcfs_bytes_stored', help: 'Bytes in block files on this data server', registers: r }),
    freeBytes: new client.Gauge({ name: 'ugcfs_free_bytes', help: 'Free bytes on the data directory filesystem', registers: r }),
    blocks: new client.Gauge({ name: 'ugcfs_blocks', help: 'Blocks held', labelNames: ['state'], registers: r }),
    replicationDuration: new client.Histogram({ name: 'ugcfs_replication_duration_seconds', help: 'Time to forward a write to peer replicas', buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1], registers: r }),
    replicationFailures: new client.Counter({ name: 'ugcfs_replication_failures_total', help: 'Writes a peer replica did not acknowledge', registers: r }),
    quarantineFiles: new client.Gauge({ name: 'ugcfs_quarantine_files', help: 'Files in the data server\'s quarantine/ (data kept because it was not proven garbage)', registers: r }),
    quarantineBytes: new client.Gauge({ name: 'ugcfs_quarantine_bytes', help: 'Bytes in the data server\'s quarantine/', registers: r }),
    compactedBytes: new client.Counter({ name: 'ugcfs_compacted_bytes_total', help: 'Bytes reclaimed by compaction', registers: r }),
    blockCopyBytes: new client.Counter({ name: 'ugcfs_block_copy_bytes_total', help: 'Bytes copied between data servers for repair and moves', labelNames: ['direction'], registers: r }),
    fencedRequests: new client.Counter({ name: 'ugcfs_fenced_requests_total', help: 'Name-server commands (source="http") and heartbeat replies (source="heartbeat") refused for an epoch below the highest seen: their sender no longer leads', labelNames: ['source'], registers: r }),
    epochSeen: new client.Gauge({ name: 'ugcfs_epoch_highest_seen', help: 'The highest name-server epoch this data server has seen (and stored in <data>/epoch)', registers: r }),
    // name server
    nameserverLeader: new client.Gauge({ name: 'ugcfs_nameserver_leader', help: '1 while this name server leads its group (always 1 for a single name server), else 0', registers: r }),
    nameserverEpoch: new client.Gauge({ name: 'ugcfs_nameserver_epoch', help: 'The epoch of the leader as this name server knows it (0 for a single name server)', registers: r }),
    elections: new client.Counter({ name: 'ugcfs_nameserver_elections_total', help: 'Times this name server won the election and started leading', registers: r }),
    stepDowns: new client.Counter({ name: 'ugcfs_nameserver_step_downs_total', help: 'Times this name server stopped leading (lease lost, another leader, shutdown)', registers: r }),
    leaseRenewals: new client.Counter({ name: 'ugcfs_nameserver_lease_renewals_total', help: 'Renewals of the leader lease in etcd', labelNames: ['result'], registers: r }),
    notLeaderAnswers: new client.Counter({ name: 'ugcfs_nameserver_not_leader_total', help: 'Requests a standby refused with 421 UGCFS_ERR_NOT_LEADER (or 503 UGCFS_ERR_NO_QUORUM)', registers: r }),
    dataserversAlive: new client.Gauge({ name: 'ugcfs_dataservers_alive', help: 'Data servers currently alive', registers: r }),
    underReplicated: new client.Gauge({ name: 'ugcfs_under_replicated_blocks', help: 'Blocks with fewer live replicas than configured', registers: r }),
    reportMessages: new client.Counter({ name: 'ugcfs_report_messages_total', help: 'Block-report messages applied (a full report\'s pages, deltas)', labelNames: ['kind'], registers: r }),
    reportEntries: new client.Counter({ name: 'ugcfs_report_entries_total', help: 'Block entries those messages carried (blocks set or removed): the name server\'s report work', registers: r }),
    reportFullRequests: new client.Counter({ name: 'ugcfs_report_full_requests_total', help: 'Full block reports asked of data servers, by reason (unknown-session, page-gap, digest)', labelNames: ['reason'], registers: r }),
    blockTableBytes: new client.Gauge({ name: 'ugcfs_block_table_bytes', help: 'Bytes of the name server\'s in-memory block and copy tables', registers: r }),
    repairs: new client.Counter({ name: 'ugcfs_repairs_total', help: 'Block re-replications completed', labelNames: ['result'], registers: r }),
    assigns: new client.Counter({ name: 'ugcfs_assigns_total', help: 'File ids assigned', registers: r }),
    clusterBytes: new client.Gauge({ name: 'ugcfs_cluster_used_bytes', help: 'Bytes stored across live data servers', registers: r }),
    blockMoves: new client.Counter({ name: 'ugcfs_block_moves_total', help: 'Block copies moved by cluster operations (rebalance, drain, verify --repair)', labelNames: ['kind', 'result'], registers: r }),
    operations: new client.Counter({ name: 'ugcfs_operations_total', help: 'Cluster operations finished, by kind and final state', labelNames: ['kind', 'state'], registers: r }),
    // origin
    cacheLookups: new client.Counter({ name: 'ugcfs_cache_lookups_total', help: 'Origin cache lookups', labelNames: ['tier', 'result'], registers: r }),
    resizes: new client.Counter({ name: 'ugcfs_resizes_total', help: 'Variants computed by the image pipeline', labelNames: ['format'], registers: r }),
    resizeDuration: new client.Histogram({ name: 'ugcfs_resize_duration_seconds', help: 'Image pipeline time per variant', buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers: r }),
    resizeQueue: new client.Gauge({ name: 'ugcfs_resize_queue', help: 'Variants waiting for a resize slot', registers: r }),
    resizeRejected: new client.Counter({ name: 'ugcfs_resize_rejected_total', help: 'Resizes refused with 503 because capacity was full', registers: r }),
    bytesServed: new client.Counter({ name: 'ugcfs_bytes_served_total', help: 'Body bytes served to clients', labelNames: ['kind'], registers: r }),
    uploads: new client.Counter({ name: 'ugcfs_uploads_total', help: 'Files uploaded', labelNames: ['result'], registers: r }),
    peerFetches: new client.Counter({ name: 'ugcfs_peer_fetches_total', help: 'Variants fetched from the owning origin peer', labelNames: ['result'], registers: r }),
    legacyLookups: new client.Counter({ name: 'ugcfs_legacy_lookups_total', help: 'Legacy path lookups', labelNames: ['result'], registers: r }),
    // origin: edge purge (--purge-edges, --purge-webhook; docs/ORIGIN.md "Edge purge")
    edgePurgeRequests: new client.Counter({ name: 'ugcfs_edge_purge_requests_total', help: 'Purge requests to CDN edges and the purge webhook: sent (the edge confirmed) or failed (retried with backoff)', labelNames: ['edge', 'result'], registers: r }),
    edgePurgesPending: new client.Gauge({ name: 'ugcfs_edge_purges_pending', help: 'Deleted files an edge has not yet confirmed forgetting', labelNames: ['edge'], registers: r }),
    edgePurgesDropped: new client.Counter({ name: 'ugcfs_edge_purges_dropped_total', help: 'Deleted files whose purge was given up because the edge\'s queue (--purge-queue) was full', labelNames: ['edge'], registers: r }),
    edgePurgeSeconds: new client.Histogram({ name: 'ugcfs_edge_purge_seconds', help: 'Time from a delete acknowledged to the edge confirming it forgot the file', labelNames: ['edge'], buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300], registers: r }),
    servedUrlsForgotten: new client.Counter({ name: 'ugcfs_edge_purge_urls_forgotten_total', help: 'Served URLs no longer remembered for by-URL edge purges (--purge-remember-urls reached, or over 256 per file)', registers: r }),
  };
}

export type Metrics = ReturnType<typeof make>;

export function createMetrics(role: string, opts: { defaultMetrics?: boolean } = {}): { registry: client.Registry; metrics: Metrics } {
  const registry = new client.Registry();
  registry.setDefaultLabels({ role });
  const metrics = make(registry);
  if (opts.defaultMetrics) client.collectDefaultMetrics({ register: registry, prefix: 'ugcfs_process_' });
  return { registry, metrics };
}

/** Records one answered request: its method, status and seconds taken. */
export type RouteRecorder = (method: string, status: number, seconds: number) => void;

/**
 * Request metrics for a route answered outside fastify's onResponse hook (the hot routes
 * served ahead of it), under the same names and labels. The labelled children are bound
 * once per (method, status): resolving label values on every request is a measurable share
 * of a cached read's CPU.
 */
export function routeRecorder(metrics: Metrics, route: string): RouteRecorder {
  type Bound = { duration: { observe(v: number): void }; byStatus: Map<number, { inc(): void }> };
  const byMethod = new Map<string, Bound>();
  return (method, status, seconds) => {
    let m = byMethod.get(method);
    if (!m) byMethod.set(method, (m = { duration: metrics.httpDuration.labels({ route, method }), byStatus: new Map() }));
    let c = m.byStatus.get(status);
    if (!c) m.byStatus.set(status, (c = metrics.httpRequests.labels({ route, method, status: String(status) })));
    c.inc();
    m.duration.observe(seconds);
  };
}

/** One exposition of several registries' getMetricsAsJSON() answers (an origin worker pool's
 * /metrics): counters and histograms summed, gauges by each metric's own aggregator. */
export function aggregatedMetricsText(parts: unknown[]): Promise<string> {
  return client.AggregatorRegistry.aggregate(parts as client.MetricObjectWithValues<client.MetricValue<string>>[][]).metrics();
}
