// The files a run skipped for a reason or failed, for the final report. A legacy tree can hold
// millions of files that are not images, so the list is spilled to a JSON-lines file in the
// system's temporary directory (made on the first entry, removed on close, or by the next run after a SIGKILL) and streamed back
// into the report: memory holds a count, not the list.
import { closeSync, createReadStream, openSync, rmSync, writeSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { scratchDir } from './scratch-dir.ts';

export interface Problem {
  path: string;
  reason: string;
}

export class ProblemList {
  count = 0;
  private dir: string | undefined;
  private fd: number | undefined;

  add(p: Problem): void {
    if (this.fd === undefined) {
      this.dir = scratchDir('report');
      this.fd = openSync(join(this.dir, 'list.jsonl'), 'w');
    }
    writeSync(this.fd, JSON.stringify({ path: p.path, reason: p.reason }) + '\n');
    this.count++;
  }

  /** The entries in the order they were added. */
  async *entries(): AsyncGenerator<Problem> {
    if (this.dir === undefined) return;
    for await (const line of createInterface({ input: createReadStream(join(this.dir, 'list.jsonl'), { encoding: 'utf8' }), crlfDelay: Infinity })) {
      if (line) yield JSON.parse(line) as Problem;
    }
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
    if (this.dir !== undefined) rmSync(this.dir, { recursive: true, force: true });
    this.dir = undefined;
  }
}
