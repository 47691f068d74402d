// Bare sharp (bench/peers/bare-sharp.ts) started with the origin's own resize settings, so a
// resize-miss ratio compares the origin's per-miss work and nothing else: as many resizes at
// once as the origin's default --resize-concurrency (the rest wait), the same libvips
// threads per resize, libvips' operation cache off (the origin turns it off too).
import { ORIGIN_OPTIONS } from '../../origin/config.ts';
import { vipsThreadsPerResize } from '../../origin/image-pipeline.ts';
import { startPeer, type Child } from './spawn.ts';

export const RESIZE_JOBS = ORIGIN_OPTIONS.resizeConcurrency.default;

export function bareSharpArgs(photos: string): string[] {
  return ['--dir', photos, '--jobs', String(RESIZE_JOBS), '--threads', String(vipsThreadsPerResize(RESIZE_JOBS))];
}

export function startBareSharp(photos: string): Promise<Child> {
  return startPeer('bare-sharp', bareSharpArgs(photos));
}
