// What every bench section gets, and what it hands back.
import type { Tools } from './preflight.ts';
import type { MachineInfo } from './machine.ts';
import type { Goal } from './results.ts';
import type { BenchTls } from './tls.ts';

export interface BenchContext {
  tools: Tools;
  machine: MachineInfo;
  quick: boolean;
  /** run the parts' own bench scripts in their full form (external section) */
  externalFull: boolean;
  /** repetitions per figure (the median is reported) */
  runs: number;
  /** seconds per wrk / load run */
  durationS: number;
  /** a private temp dir for this section */
  work: string;
  log(msg: string): void;
  /** --tls, for a section with a TLS mode: the run's CA and certificate; every ugcfs role serves HTTPS */
  tls?: BenchTls;
  /** the ha section's flags (--ha-kills, --ha-lease-ms, --etcd-records) */
  ha?: { kills: number; leaseMs: readonly number[]; etcdRecords: number };
}

export interface SectionOutput {
  /** named figures and tables for bench/templates/sections/<id>.md */
  values: Record<string, string | number | boolean>;
  goals: Goal[];
  commands: string[];
  data: unknown;
}

export interface Section {
  id: string;
  title: string;
  /** it has a TLS mode (--tls): its figures are then stored apart, as `<id>-tls` */
  tls?: boolean;
  run(ctx: BenchContext): Promise<SectionOutput>;
}
