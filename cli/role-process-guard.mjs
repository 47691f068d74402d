// Loaded with `node --import` into every role process `ugcfs server` starts (cli/role-process.ts),
// before bin/ugcfs.mjs. Those processes run in a process group of their own, so a terminal's
// Ctrl-C reaches only the supervisor, which stops them in order; nothing else would stop them
// if the supervisor were gone (SIGKILLed, crashed), and they would keep the ports and the data
// directory. The supervisor holds the other end of an IPC channel: when it goes, the channel
// closes, and the role stops itself as on SIGTERM (gracefully, its own shutdown).
// Plain JavaScript: it runs before the bin registers the TypeScript loader. An origin's
// workers (node:cluster, started with the same Node flags) load it too and leave it alone:
// their channel is the origin's, which they already follow.
import cluster from 'node:cluster';

if (process.channel && !cluster.isWorker) {
  process.once('disconnect', () => process.kill(process.pid, 'SIGTERM'));
  // Watching the channel must not keep a role alive that is done (a start that failed).
  process.channel.unref();
}
