// Settings of the name server's cluster operations (rebalance, drain, verify, compact).
// OPS_OPTIONS is meant to be spread into NAMESERVER_OPTIONS so each is a flag; until it is,
// opsSettings() falls back to these defaults for any key the name-server config lacks.
import { opt, type ConfigOf } from '../src/base/config.ts';

export const OPS_OPTIONS = {
  compactIntervalMs: opt.int(600_000, 'how often the name server looks for blocks to compact by itself (0: never)', { min: 0 }),
  compactThreshold: opt.number(0.3, 'automatic compaction takes blocks whose deleted share is at least this', { min: 0.01, max: 1 }),
  balanceIntervalMs: opt.int(0, 'how often the name server checks the byte balance and rebalances by itself (0: never)', { min: 0 }),
  balanceThreshold: opt.number(0.25, 'automatic rebalance starts when a live data server\'s used bytes are off the mean by more than this share', { min: 0.01, max: 10 }),
  // Weekly by default: verify --repair must run within --tombstone-keep-hours (default 14 days)
  // of a half-applied delete, or expiry can let the deleted file come back from the other copy.
  verifyIntervalMs: opt.int(7 * 24 * 3_600_000, 'how often the name server runs verify --repair by itself, settling copies that diverged (0: never)', { min: 0, max: 2_147_483_647 }),
  moveConcurrency: opt.int(2, 'block moves (rebalance, drain, repair of bad copies) run at the same time', { min: 1, max: 64 }),
  moveBytesPerSec: opt.int(0, 'bytes per second block moves may copy in total (0: no limit)', { min: 0 }),
};

export type OpsSettings = ConfigOf<typeof OPS_OPTIONS>;

export function opsSettings(config: object): OpsSettings {
  const c = config as Partial<Record<keyof OpsSettings, unknown>>;
  const out: Record<string, number> = {};
  for (const [k, spec] of Object.entries(OPS_OPTIONS)) {
    const v = c[k as keyof OpsSettings];
    out[k] = typeof v === 'number' && Number.isFinite(v) ? v : spec.default;
  }
  return out as OpsSettings;
}
