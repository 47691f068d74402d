// The origin's flood control, built from its config in one place (docs/SECURITY.md, "Floods,
// quotas and signatures"): variant misses rate-limited per client address, a cap on the
// variants made of one file, uploads decoded on slots of their own and rate-limited per
// token, and --quota-bytes per upload token counted by the name server.
import { UgcfsError } from '../src/base/errors.ts';
import type { Logger } from '../src/base/log.ts';
import type { Metrics } from '../src/base/metrics.ts';
import type { OriginConfig } from './config.ts';
import { RateLimiter } from './rate-limit.ts';
import { ResizeGate } from './resize-gate.ts';
import { VariantBudget } from './variant-budget.ts';

/** What one upload owner stores, shared by every origin of the cluster. */
export interface UploadQuota {
  /** Counts `bytes` more for `owner`, or throws 403 UGCFS_ERR_QUOTA_EXCEEDED and counts nothing. */
  reserve(owner: string, bytes: number): Promise<void>;
  /** Counts `bytes` fewer (a delete, an upload that failed); never throws. */
  release(owner: string, bytes: number): Promise<void>;
}

/** The slice of ClusterClient the quota needs (the name server's quota module). */
export interface QuotaCounter {
  quotaChange(owner: string, delta: number, limit?: number): Promise<unknown>;
}

export function nameserverQuota(counter: QuotaCounter, limit: number, log: Logger): UploadQuota {
  return {
    async reserve(owner, bytes) {
      await counter.quotaChange(owner, bytes, limit);
    },
    async release(owner, bytes) {
      if (bytes <= 0 || owner === '') return;
      // A lost release leaves the owner counted for bytes it no longer stores: it errs on
      // the side of refusing, and the log says by how much.
      await counter.quotaChange(owner, -bytes).catch((err: unknown) => log.warn({ owner, bytes, err: (err as Error).message }, 'could not release upload quota'));
    },
  };
}

export interface FloodControl {
  /** variant misses per client address */
  variantLimiter: RateLimiter;
  /** uploads per upload owner */
  uploadLimiter: RateLimiter;
  budget: VariantBudget;
  /** upload decodes, apart from the variants' ResizeGate */
  uploadGate: ResizeGate;
  /** undefined: --quota-bytes 0 */
  quota: UploadQuota | undefined;
  /** what /healthz shows */
  health(): Record<string, unknown>;
}

export function floodControl(config: OriginConfig, counter: QuotaCounter | undefined, metrics: Metrics, log: Logger): FloodControl {
  if (config.quotaBytes > 0 && !counter) {
    throw new UgcfsError('UGCFS_ERR_BAD_USAGE', '--quota-bytes is counted by the name server; this origin has no cluster client');
  }
  const variantLimiter = new RateLimiter({ rate: config.variantRate, burst: config.variantBurst, what: 'variant misses from this address' });
  const uploadLimiter = new RateLimiter({ rate: config.uploadRate, burst: config.uploadBurst, what: 'uploads with this token' });
  const budget = new VariantBudget(config.maxVariantsPerFile);
  const uploadGate = new ResizeGate(config.uploadDecodeConcurrency, config.uploadDecodeQueue, () => {}, () => metrics.resizeRejected.inc());
  const quota = config.quotaBytes > 0 ? nameserverQuota(counter!, config.quotaBytes, log) : undefined;
  return {
    variantLimiter,
    uploadLimiter,
    budget,
    uploadGate,
    quota,
    health: () => ({
      uploadDecode: uploadGate.stats(),
      variantRateKeys: variantLimiter.size,
      uploadRateKeys: uploadLimiter.size,
      variantBudgetFiles: budget.size,
    }),
  };
}
