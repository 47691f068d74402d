// The machine and versions a result was measured on, printed at the top of the doc.
import { cpus, totalmem, release, loadavg } from 'node:os';
import { readFileSync } from 'node:fs';
import type { Tools } from './preflight.ts';
import { proactiveReclaim } from './resident.ts';

export interface MachineInfo {
  cpu: string;
  cores: number;
  ramGiB: number;
  kernel: string;
  os: string;
  node: string;
  nginx?: string;
  wrk?: string;
  sharp?: string;
  vips?: string;
  /** what the kernel pages out on its own ('' when nothing) */
  reclaim?: string;
  loadavgAtStart: number[];
}

export async function machineInfo(tools: Tools): Promise<MachineInfo> {
  let os = 'unknown';
  try {
    os = /PRETTY_NAME="([^"]+)"/.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] ?? os;
  } catch { /* not Linux */ }
  const sharp = (await import('sharp')).default;
  const c = cpus();
  return {
    cpu: c[0]?.model.trim() ?? 'unknown',
    cores: c.length,
    ramGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    os,
    node: process.version,
    nginx: tools.nginxVersion,
    wrk: tools.wrkVersion,
    sharp: sharp.versions.sharp,
    vips: sharp.versions.vips,
    reclaim: proactiveReclaim(),
    loadavgAtStart: loadavg().map((x) => Math.round(x * 100) / 100),
  };
}
