// Loaded with `node --import` into every role process `ugcfs server` starts (cli/role-process.ts),
// before bin/ugcfs.mjs, and so into an origin's node:cluster workers too (they run with the
// same Node flags). Plain JavaScript: it runs before the bin registers the TypeScript loader.
import cluster from 'node:cluster';

// A terminal's Ctrl-C goes to its whole foreground process group: the supervisor and every
// role at once. The supervisor stops the roles in order, with SIGTERM; a role acting on that
// SIGINT itself would stop out of order (data servers closing under the origin's uploads) and
// take the supervisor's SIGTERM for a second signal, which exits at once. So SIGINT means
// nothing to a supervised role: the listeners its code adds for it are kept out, and one that
// does nothing keeps Node's default action (exit) away. (The roles could be kept out of the
// terminal's group instead, but only with a session of their own, and Linux's scheduler
// autogroups then weigh each session as one: measured on a busy machine, an origin in its own
// session answered a third of the cache hits it answers in the terminal's.)
process.on('SIGINT', () => {});
for (const name of ['on', 'addListener', 'once', 'prependListener', 'prependOnceListener']) {
  const add = process[name];
  process[name] = function (event, listener) {
    return event === 'SIGINT' ? this : add.call(this, event, listener);
  };
}

// Nothing else would stop a role when the supervisor is gone (SIGKILLed, crashed), and it
// would keep the ports and the data directory. The supervisor holds the other end of an IPC
// channel: when it goes, the channel closes, and the role stops itself as on SIGTERM
// (gracefully, its own shutdown). An origin's workers follow their origin by their own channel.
if (process.channel && !cluster.isWorker) {
  process.once('disconnect', () => process.kill(process.pid, 'SIGTERM'));
  // Watching the channel must not keep a role alive that is done (a start that failed).
  process.channel.unref();
}
