import { readdirSync } from 'node:fs';
import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { pixelBudget, ResizeGate } from '../../origin/resize-gate.ts';
import { headerSize, jobPixels } from '../../origin/image-size.ts';
import { UgcfsError } from '../../src/base/errors.ts';
import { workerConfig } from '../../origin/worker-pool.ts';
import type { OriginConfig } from '../../origin/config.ts';
import { CORPUS } from '../helpers/proc.ts';
import { corpus } from './origin-env.ts';

/** A job that runs until released, recording when it started. */
function held(log: string[], name: string) {
  let release!: () => void;
  const done = new Promise<void>((r) => (release = r));
  return { job: async () => { log.push(name); await done; return name; }, release };
}

const tick = () => new Promise<void>((r) => setImmediate(r));

describe('resize gate', () => {
  it('runs light jobs side by side up to the slot count', async () => {
    const gate = new ResizeGate(4, 10, undefined, undefined, 100);
    const log: string[] = [];
    const jobs = ['a', 'b', 'c', 'd', 'e'].map((n) => held(log, n));
    const runs = jobs.map((j) => gate.run(j.job, 10));
    await tick();
    expect(log).toEqual(['a', 'b', 'c', 'd']);
    expect(gate.stats()).toEqual({ running: 4, waiting: 1, weight: 40 });
    jobs[0]!.release();
    await tick();
    expect(log).toEqual(['a', 'b', 'c', 'd', 'e']);
    for (const j of jobs) j.release();
    expect(await Promise.all(runs)).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(gate.stats()).toEqual({ running: 0, waiting: 0, weight: 0 });
  });

  it('keeps the weight running within the budget, and a heavy head holds later light jobs back', async () => {
    const gate = new ResizeGate(4, 10, undefined, undefined, 100);
    const log: string[] = [];
    const big1 = held(log, 'big1');
    const big2 = held(log, 'big2');
    const small = held(log, 'small');
    const r1 = gate.run(big1.job, 60);
    const r2 = gate.run(big2.job, 60); // 120 > 100: waits although a slot is free
    const r3 = gate.run(small.job, 1); // would fit, but arrived after big2: no overtaking
    await tick();
    expect(log).toEqual(['big1']);
    expect(gate.stats()).toEqual({ running: 1, waiting: 2, weight: 60 });
    big1.release();
    await r1;
    await tick();
    expect(log).toEqual(['big1', 'big2', 'small']);
    expect(gate.stats().weight).toBe(61);
    big2.release();
    small.release();
    await Promise.all([r2, r3]);
  });

  it('runs a job heavier than the whole budget, alone', async () => {
    const gate = new ResizeGate(4, 10, undefined, undefined, 100);
    const log: string[] = [];
    const huge = held(log, 'huge');
    const next = held(log, 'next');
    const r1 = gate.run(huge.job, 500);
    const r2 = gate.run(next.job, 1);
    await tick();
    expect(log).toEqual(['huge']);
    huge.release();
    next.release();
    await Promise.all([r1, r2]);
    expect(log).toEqual(['huge', 'next']);
  });

  it('refuses with 503 Busy once the queue is full, and frees the slot when a job fails', async () => {
    let rejected = 0;
    const gate = new ResizeGate(1, 1, undefined, () => rejected++);
    const log: string[] = [];
    const a = held(log, 'a');
    const ra = gate.run(a.job);
    const rb = gate.run(async () => { throw new Error('decode failed'); });
    const err = await gate.run(async () => 'c').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UgcfsError);
    expect((err as UgcfsError).code).toBe('UGCFS_ERR_BUSY');
    expect(rejected).toBe(1);
    a.release();
    await ra;
    await expect(rb).rejects.toThrow('decode failed');
    expect(gate.stats()).toEqual({ running: 0, waiting: 0, weight: 0 });
    expect(await gate.run(async () => 'd')).toBe('d');
  });

  it('budgets two images at --max-pixels, and --workers split it and the slots', () => {
    expect(pixelBudget(100_000_000)).toBe(200_000_000);
    expect(pixelBudget(100_000_000, 2)).toBe(100_000_000);
    const config = { workers: 3, resizeConcurrency: 4, memoryCacheBytes: 0, cacheBytes: 0, cacheDir: '' } as unknown as OriginConfig;
    expect(workerConfig(config, 1).resizeConcurrency).toBe(2);
    expect(workerConfig({ ...config, workers: 8 }, 1).resizeConcurrency).toBe(1);
  });
});

describe('image sizes from headers', () => {
  it('match what sharp reads for every test image it can size', async () => {
    let sized = 0;
    for (const dir of ['photos', 'exif']) {
      for (const name of readdirSync(`${CORPUS}/${dir}`)) {
        const bytes = corpus(`${dir}/${name}`);
        const size = headerSize(bytes);
        if (!size) continue;
        const meta = await sharp(bytes).metadata();
        expect({ name, ...size }).toEqual({ name, width: meta.width, height: meta.height });
        sized++;
      }
    }
    expect(sized).toBeGreaterThanOrEqual(18);
  });

  it('reads lossless WebP and PNG, and leaves GIF, AVIF and damaged bytes unsized', async () => {
    const img = () => sharp({ create: { width: 321, height: 123, channels: 4, background: '#f00' } });
    expect(headerSize(await img().webp({ lossless: true }).toBuffer())).toEqual({ width: 321, height: 123 });
    expect(headerSize(await img().png().toBuffer())).toEqual({ width: 321, height: 123 });
    expect(headerSize(await img().gif().toBuffer())).toBeUndefined();
    expect(headerSize(await img().avif({ effort: 0 }).toBuffer())).toBeUndefined();
    const jpeg = await img().jpeg().toBuffer();
    expect(headerSize(jpeg.subarray(0, 20))).toBeUndefined();
    expect(jobPixels(jpeg, 1_000_000)).toBe(321 * 123);
    expect(jobPixels(jpeg, 1000)).toBe(1000);
    expect(jobPixels(Buffer.from('GIF89a'), 1000)).toBe(1000);
  });
});
