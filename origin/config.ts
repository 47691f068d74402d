// The origin's options table. Limits default to what a 2-core box serving product photos
// can take; docs/ORIGIN.md explains each decision.
import { opt, type ConfigOf } from '../src/base/config.ts';
import { UgcfsError } from '../src/base/errors.ts';
import { COMMON_SERVER_OPTIONS, NAMESERVER_URL_OPTION } from '../src/base/role-options.ts';
import { IMAGE_MIME } from './media-type.ts';

export const ORIGIN_OPTIONS = {
  ...COMMON_SERVER_OPTIONS,
  // An origin runs libvips on untrusted bytes at the Internet's edge: it should hold the
  // origins' credential, which reaches files only, and may go without the cluster secret.
  clusterSecret: { ...COMMON_SERVER_OPTIONS.clusterSecret, required: false, describe: 'the cluster secret; an origin needs it only without --origin-secret, which it then calls with instead (at least 32 characters)' },
  ...NAMESERVER_URL_OPTION,
  port: opt.int(8080, 'port to listen on (0 picks a free one)', { env: 'UGCFS_ORIGIN_PORT', min: 0, max: 65535 }),
  publicUrl: opt.url('', 'base URL this origin is reached at (upload answers, peer identity); defaults to the listen URL'),
  cacheDir: opt.string('', 'directory for the disk cache of variants (empty: no disk cache)'),
  cacheBytes: opt.int(1024 * 1024 * 1024, 'size bound of the disk cache', { min: 0 }),
  memoryCacheBytes: opt.int(128 * 1024 * 1024, 'size bound of the in-memory hot cache', { min: 0 }),
  peers: opt.list([], 'base URLs of every origin (this one included) sharing variants by hashring'),
  legacyOrigin: opt.url('', 'old origin to read unmapped legacy paths through'),
  legacyImport: opt.bool(false, 'import legacy files fetched through --legacy-origin in the background'),
  maxUploadBytes: opt.int(25 * 1024 * 1024, 'largest accepted upload', { min: 1 }),
  uploadTypes: opt.list(Object.values(IMAGE_MIME), 'types sellers may upload, told from the bytes; TYPE=SIZE gives a type its own limit (e.g. application/pdf=20M), image/* names the image types', { env: 'UGCFS_UPLOAD_TYPES' }),
  maxPixels: opt.int(100_000_000, 'largest source image in pixels (width x height x frames)', { min: 1 }),
  maxOutputPixels: opt.int(25_000_000, 'largest variant in pixels', { min: 1 }),
  resizeTimeoutMs: opt.int(15_000, 'image pipeline timeout per variant', { min: 100 }),
  resizeConcurrency: opt.int(4, "variants computed at once (sharp runs them on libuv's pool, 4 threads by default); their source pixels stay within twice --max-pixels", { min: 1, max: 64 }),
  resizeQueue: opt.int(64, 'variants waiting for a slot before 503 Busy', { min: 0 }),
  // Flood control (docs/SECURITY.md, "Floods, quotas and signatures").
  uploadDecodeConcurrency: opt.int(1, 'upload images decoded at once, apart from the variant slots', { min: 1, max: 64 }),
  uploadDecodeQueue: opt.int(32, 'upload images waiting for a decode slot before 503 Busy', { min: 0 }),
  variantRate: opt.number(50, 'variant misses per second one client address may cause (0: unlimited)', { min: 0 }),
  variantBurst: opt.int(300, 'variant misses one client address may cause at once before --variant-rate applies', { min: 1 }),
  maxVariantsPerFile: opt.int(32, 'distinct variants this origin makes of one file (presets do not count; 0: unlimited)', { min: 0 }),
  quotaBytes: opt.int(0, 'bytes one upload token may store in all, kept by the name server (0: unlimited)', { min: 0 }),
  uploadRate: opt.number(50, 'uploads per second one upload token may make (0: unlimited)', { min: 0 }),
  uploadBurst: opt.int(1000, 'uploads one upload token may make at once before --upload-rate applies', { min: 1 }),
  presets: opt.string('', 'named variants: JSON object {"name":{"w":..,"h":..,"fit":..,"q":..,"fmt":..,"gravity":..,"blur":..,"sharpen":1,"watermark":{"fid":..,"position":..,"opacity":..,"scale":..}}} or a path to a JSON file'),
  strict: opt.bool(false, 'allow only presets and --allowed-sizes'),
  allowedSizes: opt.list([], 'strict mode size whitelist: WxH, Wx or xH'),
  signingKeys: opt.list([], 'HMAC keys for signed variant URLs; the first signs, all verify (empty: unsigned)', { env: 'UGCFS_SIGNING_KEYS', secret: true }),
  negotiateFormat: opt.bool(false, 'pick WebP/AVIF from Accept for variants without an explicit format'),
  uploadTokens: opt.list([], 'bearer tokens allowed to upload, each 32 characters or more (empty: only the admin token uploads)', { env: 'UGCFS_UPLOAD_TOKENS', secret: true }),
  adminToken: opt.string('', 'token allowed to delete any file', { env: 'UGCFS_ADMIN_TOKEN', secret: true }),
  workers: opt.int(1, 'origin processes serving the port together (about one per core); the memory and disk cache budgets are split between them', { min: 1, max: 64 }),
  // Edge purge (docs/ORIGIN.md, "Edge purge").
  purgeEdges: opt.urls('', "CDN edges' purge addresses that must forget a deleted file: Varnish with deploy/varnish-edge.vcl, nginx with deploy/nginx-edge-purge.conf"),
  purgeWebhook: opt.url('', 'URL that receives POST {"fid","paths","keys"} for each deleted file (for CDNs with a purge API)'),
  purgeToken: opt.string('', 'sent with every purge: X-Purge-Token to the edges, Authorization: Bearer to the webhook', { env: 'UGCFS_PURGE_TOKEN', secret: true }),
  purgeQueue: opt.int(100_000, 'deleted files waiting per edge while it does not answer; beyond that the oldest purge is dropped', { min: 1 }),
  purgeRememberUrls: opt.int(100_000, 'served URLs remembered (per process) for edges that purge by exact URL (nginx)', { min: 0 }),
  locationTtlMs: opt.int(10_000, "how long a writable block's location (its replicas) is trusted before the name server is asked again", { min: 100, max: 3_600_000 }),
  sealedLocationTtlMs: opt.int(3_600_000, "how long a sealed block's location is trusted; a move or repair ends it at once (the delete feed names the block)", { min: 1000, max: 7 * 86_400_000 }),
  locationCacheSize: opt.int(100_000, 'blocks whose locations are kept; beyond that the least recently used is dropped', { min: 1, max: 10_000_000 }),
  deleteFeedIntervalMs: opt.int(1000, "how often to poll the name server's delete feed for files deleted around this origin (keep well under 5000)", { min: 50, max: 60_000 }),
};

export type OriginConfig = ConfigOf<typeof ORIGIN_OPTIONS>;

/**
 * What this origin presents to name servers, data servers and peer origins: the origins'
 * credential when it has one (least privilege), else the cluster secret. Neither stops the start.
 */
export function originCredential(config: { readonly originSecret: string; readonly clusterSecret: string }): string {
  const credential = config.originSecret || config.clusterSecret;
  if (credential === '') throw new UgcfsError('UGCFS_ERR_BAD_USAGE', 'option --origin-secret is required (or set UGCFS_ORIGIN_SECRET), or else --cluster-secret');
  return credential;
}
