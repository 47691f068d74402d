// docker-compose.yml, Dockerfile and the nginx edge, checked without a Docker engine (the
// stack itself runs in test/deploy/compose-stack.test.ts, `npm run test:containers`): every
// ugcfs service runs a real role whose flags pass that role's own option table and
// validation, each role gets only its own secrets and only from the env file, published
// ports are loopback only, volumes and racks are distinct, the wiring between services is
// consistent (the etcd members' --initial-cluster, the name-server group, every name server
// in every list), the etcd members form a cluster from their own flags (real etcd, when
// installed) and the edge config is valid nginx (the real nginx binary, when installed).
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { flagName, loadConfig, MIN_SECRET_LENGTH, type OptionTable } from '../../src/base/config.ts';
import type { UgcfsError } from '../../src/base/errors.ts';
import { NAMESERVER_OPTIONS } from '../../nameserver/config.ts';
import { DATASERVER_OPTIONS } from '../../dataserver/config.ts';
import { ORIGIN_OPTIONS } from '../../origin/config.ts';
import { SERVER_OPTIONS } from '../../cli/commands/server.ts';
import { ETCD_BIN, etcdUsable } from '../helpers/etcd.ts';
import { BIN, NODE_FLAGS, ROOT, run, tempDir, TEST_SECRET, waitFor } from '../helpers/proc.ts';
import { freePort, startReady, trackChild } from '../helpers/ready-process.ts';

interface Service {
  image?: string;
  build?: unknown;
  command?: string[];
  environment?: Record<string, string>;
  env_file?: string[];
  networks?: string[];
  volumes?: string[];
  ports?: string[];
  depends_on?: Record<string, unknown>;
  healthcheck?: unknown;
}

const compose = parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as { services: Record<string, Service>; volumes: Record<string, unknown> } & Record<string, unknown>;
const ROLE_TABLES: Record<string, OptionTable> = { nameserver: NAMESERVER_OPTIONS, dataserver: DATASERVER_OPTIONS, origin: ORIGIN_OPTIONS, server: SERVER_OPTIONS };
const SECRET_VARS = ['UGCFS_CLUSTER_SECRET', 'UGCFS_ORIGIN_SECRET', 'UGCFS_UPLOAD_TOKENS', 'UGCFS_ADMIN_TOKEN'];

function envFile(path: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}
/** .env.example as shipped: its secrets are placeholders every role refuses */
const EXAMPLE_ENV = envFile(join(ROOT, '.env.example'));
/** every variable of a secret option of some role (cluster secret, tokens, keys) */
const SECRET_ENV = new Set(Object.values(ROLE_TABLES).flatMap((t) => Object.values(t).filter((spec) => spec.secret && spec.env).map((spec) => spec.env!)));
/**
 * .env.example as an operator fills it in: every secret value replaced by its own 64 hex
 * characters (`openssl rand -hex 32`), the same count of tokens, everything else as shipped.
 */
const ENV: Record<string, string> = Object.fromEntries(
  Object.entries(EXAMPLE_ENV).map(([k, v]) => [k, SECRET_ENV.has(k) && v !== '' ? v.split(',').map(() => randomBytes(32).toString('hex')).join(',') : v]),
);

/**
 * What compose makes of a service's `environment` given an env file: ${VAR}, ${VAR:-default}
 * and ${VAR:?message} substituted (a missing ${VAR:?} throws, as `up` refuses to start).
 */
function environmentOf(s: Service, env: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(s.environment ?? {})) {
    out[k] = String(v).replace(/\$\{([A-Z0-9_]+)(?::([-?])([^}]*))?\}/g, (_, name: string, op?: string, arg?: string) => {
      const value = env[name];
      if (value !== undefined && value !== '') return value;
      if (op === '?') throw new Error(`compose refuses to start: ${arg}`);
      return op === '-' ? arg! : '';
    });
  }
  return out;
}

const ugcfs = Object.entries(compose.services).filter(([, s]) => s.image === 'ugcfs:local');
const byRole = (role: string) => ugcfs.filter(([, s]) => s.command?.[0] === role);
const etcds = Object.entries(compose.services).filter(([, s]) => s.image === 'ugcfs-etcd:local');

/** The role config exactly as the container would load it: its flags and its environment, from the env file. */
function configOf(s: Service): Record<string, unknown> {
  const [role, ...argv] = s.command!;
  const { config, positionals } = loadConfig(ROLE_TABLES[role!]!, { argv, env: environmentOf(s, ENV) });
  expect(positionals).toEqual([]);
  return config as Record<string, unknown>;
}

function flag(s: Service, name: string): string | undefined {
  const i = s.command!.indexOf(name);
  return i < 0 ? undefined : s.command![i + 1];
}

describe('docker-compose.yml', () => {
  it('has three etcd members, two name servers, three data servers, two origins and an nginx edge', () => {
    expect(etcds).toHaveLength(3);
    expect(byRole('nameserver')).toHaveLength(2);
    expect(byRole('dataserver')).toHaveLength(3);
    expect(byRole('origin')).toHaveLength(2);
    expect(compose.services.edge?.image).toBe('ugcfs-edge:local');
    expect((compose.services.edge?.build as { dockerfile?: string }).dockerfile).toBe('deploy/compose/edge.Dockerfile');
    expect(ugcfs).toHaveLength(7);
    expect(Object.keys(compose.services)).toHaveLength(11);
  });

  it("is a file Debian's docker-compose 1.29 reads: no version and no top-level name", () => {
    for (const key of Object.keys(compose)) expect(['services', 'networks', 'volumes'].includes(key) || key.startsWith('x-'), key).toBe(true);
  });

  it('publishes ports on 127.0.0.1 only: the edge and the two name servers', () => {
    const published: string[] = [];
    for (const [name, s] of Object.entries(compose.services)) {
      for (const p of s.ports ?? []) {
        expect(p, name).toMatch(/^127\.0\.0\.1:(\d+|\$\{[A-Z0-9_]+:-\d+\}):\d+$/);
        published.push(name);
      }
    }
    expect(published.sort()).toEqual(['edge', 'nameserver-1', 'nameserver-2']);
  });

  it('runs three etcd members that form one cluster from their own flags, each with its own volume', () => {
    const names = etcds.map(([name]) => name);
    const peers = new Map<string, string>();
    const clusters = new Set<string>();
    for (const [name, s] of etcds) {
      expect((s.build as { dockerfile?: string } | undefined)?.dockerfile, name).toBe('deploy/etcd.Dockerfile');
      expect(flag(s, '--name'), name).toBe(name);
      expect(flag(s, '--advertise-client-urls'), name).toBe(`http://${name}:2379`);
      expect(flag(s, '--initial-advertise-peer-urls'), name).toBe(`http://${name}:2380`);
      expect(flag(s, '--listen-client-urls'), name).toBe('http://0.0.0.0:2379');
      expect(flag(s, '--listen-peer-urls'), name).toBe('http://0.0.0.0:2380');
      expect(flag(s, '--initial-cluster-state'), name).toBe('new');
      expect(flag(s, '--initial-cluster-token'), name).toBe(flag(etcds[0]![1], '--initial-cluster-token'));
      // The compaction nameserver/metadata-store/README.md asks for, and etcd's default quota stated.
      expect(flag(s, '--auto-compaction-mode'), name).toBe('revision');
      expect(Number(flag(s, '--auto-compaction-retention')), name).toBeGreaterThan(0);
      expect(Number(flag(s, '--quota-backend-bytes')), name).toBe(2 * 1024 ** 3);
      clusters.add(flag(s, '--initial-cluster')!);
      peers.set(name, flag(s, '--initial-advertise-peer-urls')!);
      const dataDir = flag(s, '--data-dir')!;
      const mount = (s.volumes ?? []).map((v) => v.split(':')).find(([, target]) => dataDir.startsWith(`${target}/`));
      expect(mount, `${name} keeps ${dataDir} on a volume`).toBeDefined();
      expect(Object.keys(compose.volumes)).toContain(mount![0]);
      expect(etcds.filter(([, o]) => o.volumes?.some((v) => v.split(':')[0] === mount![0])), `${mount![0]} used once`).toHaveLength(1);
      expect(s.ports, `${name}: etcd is not published`).toBeUndefined();
    }
    // Every member lists the same cluster: each member exactly once, at its own peer URL.
    expect(clusters.size).toBe(1);
    const listed = new Map([...clusters][0]!.split(',').map((m) => m.split('=') as [string, string]));
    expect([...listed.keys()].sort()).toEqual([...names].sort());
    for (const [name, url] of peers) expect(listed.get(name), name).toBe(url);
    // Three members: a quorum of two survives one member down.
    expect(Math.floor(listed.size / 2) + 1).toBe(2);
  });

  it('runs two name servers sharing their state in every etcd member, each advertising its own service', () => {
    const members = etcds.map(([, s]) => flag(s, '--advertise-client-urls')).sort();
    const prefixes = new Set<string>();
    for (const [name, s] of byRole('nameserver')) {
      const c = configOf(s);
      expect(String(c.etcd).split(',').sort(), name).toEqual(members);
      expect(c.advertiseUrl, name).toBe(`http://${name}:${c.port}`);
      expect(c.etcdPrefix, name).toMatch(/^\/ugcfs\/[a-z0-9-]+$/);
      prefixes.add(String(c.etcdPrefix));
      expect(c.data, `${name}: no local state beside etcd`).toBe('');
      expect(c.importState, name).toBe('');
      expect(c.leaseMs as number).toBeGreaterThanOrEqual(2000);
      expect(Object.keys(s.depends_on ?? {}).sort(), `${name} waits for etcd`).toEqual(etcds.map(([n]) => n).sort());
    }
    expect(prefixes.size, 'one cluster: one prefix').toBe(1);
  });

  it('runs a real ugcfs role with flags that role accepts, listening beyond loopback with a secret', () => {
    for (const [name, s] of ugcfs) {
      const role = s.command![0]!;
      expect(existsSync(join(ROOT, 'cli', 'commands', `${role}.ts`)), `${name}: ugcfs ${role}`).toBe(true);
      expect(ROLE_TABLES[role], `${name}: ${role} is a server role`).toBeDefined();
      const config = configOf(s);
      expect(config.host).toBe('0.0.0.0');
      // Every role starts only with a credential (loadConfig and originCredential refuse otherwise).
      expect(String(config.originSecret || config.clusterSecret).length, name).toBeGreaterThanOrEqual(MIN_SECRET_LENGTH);
      // The image's HEALTHCHECK asks /healthz on UGCFS_HEALTH_PORT: it must be this role's port.
      expect(Number(s.environment?.UGCFS_HEALTH_PORT), name).toBe(config.port);
    }
  });

  it('takes secrets and tokens only from the env file, each role only its own', () => {
    for (const [name, s] of Object.entries(compose.services)) {
      // Substituted from .env by compose, never written here, never the whole file to every role.
      expect(s.env_file, name).toBeUndefined();
      for (const [k, v] of Object.entries(s.environment ?? {})) if (SECRET_ENV.has(k)) expect(v, `${name}: ${k}`).toMatch(new RegExp(`^\\$\\{${k}(:[-?][^}]*)?\\}$`));
      for (const f of ['--cluster-secret', '--origin-secret', '--upload-tokens', '--admin-token', '--signing-keys']) expect(s.command ?? [], name).not.toContain(f);
    }
    const secretsOf = (role: string) => [...new Set(byRole(role).map(([, s]) => Object.keys(s.environment ?? {}).filter((k) => SECRET_ENV.has(k)).sort().join(',')))];
    expect(secretsOf('nameserver')).toEqual(['UGCFS_ADMIN_TOKEN,UGCFS_CLUSTER_SECRET,UGCFS_ORIGIN_SECRET']);
    expect(secretsOf('dataserver')).toEqual(['UGCFS_CLUSTER_SECRET,UGCFS_ORIGIN_SECRET']);
    // The origins call name and data servers with the origins' credential only.
    expect(secretsOf('origin')).toEqual(['UGCFS_ADMIN_TOKEN,UGCFS_ORIGIN_SECRET,UGCFS_SIGNING_KEYS,UGCFS_UPLOAD_TOKENS']);
    for (const [name, s] of [...etcds, ['edge', compose.services.edge!] as const]) expect(s.environment, name).toBeUndefined();
    // A secret missing from .env stops compose before any container starts.
    expect(() => environmentOf(byRole('origin')[0]![1], { ...ENV, UGCFS_ORIGIN_SECRET: '' })).toThrow(/UGCFS_ORIGIN_SECRET/);
    for (const v of SECRET_VARS) expect(EXAMPLE_ENV[v], `.env.example sets ${v}`).toBeTruthy();
    const text = readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8');
    for (const v of SECRET_VARS) expect(text).not.toContain(EXAMPLE_ENV[v]!.split(',')[0]!);
    const origin = configOf(byRole('origin')[0]![1]);
    expect(origin.uploadTokens).toEqual(ENV.UGCFS_UPLOAD_TOKENS!.split(','));
    expect(origin.adminToken).toBe(ENV.UGCFS_ADMIN_TOKEN);
    expect(configOf(byRole('nameserver')[0]![1]).clusterSecret).toBe(ENV.UGCFS_CLUSTER_SECRET);
  });

  it('refuses the secrets of .env.example as shipped: a copied but unedited .env starts nothing', () => {
    const refusal = (fn: () => unknown): string => {
      try {
        fn();
      } catch (err) {
        expect((err as UgcfsError).code).toBe('UGCFS_ERR_BAD_USAGE');
        return (err as Error).message;
      }
      throw new Error('expected the start to be refused');
    };
    const shipped = SECRET_VARS.filter((v) => EXAMPLE_ENV[v]);
    expect(shipped).toEqual(SECRET_VARS);
    for (const [name, s] of ugcfs) {
      const [role, ...argv] = s.command!;
      const table = ROLE_TABLES[role!]!;
      // The whole file as shipped: refused, naming an option and never showing a value.
      const all = refusal(() => loadConfig(table, { argv, env: environmentOf(s, EXAMPLE_ENV) }));
      expect(all, name).toMatch(/^option --[a-z-]+ \(from UGCFS_[A-Z_]+\) is (shorter than 32 characters|an example value)/);
      // Each shipped secret alone, in an otherwise filled-in file: refused, naming its own option.
      let checked = 0;
      for (const [key, spec] of Object.entries(table)) {
        if (!spec.secret || !spec.env || !EXAMPLE_ENV[spec.env] || !(spec.env in (s.environment ?? {}))) continue;
        const message = refusal(() => loadConfig(table, { argv, env: environmentOf(s, { ...ENV, [spec.env!]: EXAMPLE_ENV[spec.env!]! }) }));
        expect(message, `${name}: ${spec.env}`).toMatch(new RegExp(`^option ${flagName(key)} \\(from ${spec.env}\\) is (shorter than 32 characters|an example value)`));
        for (const v of EXAMPLE_ENV[spec.env]!.split(',')) expect(message).not.toContain(v);
        checked++;
      }
      expect(checked, `${name} reads its credential from .env`).toBeGreaterThanOrEqual(1);
    }
  });

  it('a role started with .env.example as shipped exits 2 with one line naming the option', async () => {
    const t = tempDir('ugcfs-compose-example-');
    try {
      // Only the file's values: the test's own cluster secret must not stand in for them.
      const r = await run(['dataserver', '--data', t.dir, '--port', '0'], { env: { ...EXAMPLE_ENV }, timeoutMs: 60_000 });
      const lines = r.stderr.split('\n').filter((l) => l.trim() !== '' && !/^\(node:\d+\) |^\(Use `node --trace-warnings/.test(l));
      expect(lines, r.stderr).toEqual([expect.stringMatching(/^ugcfs dataserver: option --cluster-secret \(from UGCFS_CLUSTER_SECRET\) is (shorter than 32 characters|an example value)/)]);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).not.toContain(EXAMPLE_ENV.UGCFS_CLUSTER_SECRET!);
    } finally {
      t.cleanup();
    }
  }, 90_000);

  it('gives every stateful service its own named volume at its data or cache directory', () => {
    const seen = new Set<string>();
    for (const [name, s] of ugcfs) {
      if (s.command![0] === 'nameserver') continue; // its state is in etcd (above)
      const config = configOf(s);
      const dir = String(s.command![0] === 'origin' ? config.cacheDir : config.data);
      expect(dir, name).not.toBe('');
      const mount = (s.volumes ?? []).map((v) => v.split(':')).find(([, target]) => target === dir);
      expect(mount, `${name} mounts a volume at ${dir}`).toBeDefined();
      const volume = mount![0]!;
      expect(volume.startsWith('.') || volume.startsWith('/'), `${name}: named volume, not a bind mount`).toBe(false);
      expect(Object.keys(compose.volumes), name).toContain(volume);
      expect(seen.has(volume), `${volume} used twice`).toBe(false);
      seen.add(volume);
    }
  });

  it('puts the data servers on different racks with distinct ids and reachable public URLs', () => {
    const ds = byRole('dataserver').map(([name, s]) => ({ name, s, c: configOf(s) }));
    expect(new Set(ds.map((d) => d.c.rack)).size).toBe(3);
    expect(ds.every((d) => d.c.rack !== 'default')).toBe(true);
    expect(new Set(ds.map((d) => d.c.id)).size).toBe(3);
    for (const d of ds) expect(d.c.publicUrl).toBe(`http://${d.name}:${d.c.port}`);
  });

  it('points data servers and origins at both name servers, and each origin at every origin by --peers', () => {
    const nsUrls = byRole('nameserver').map(([name, s]) => String(configOf(s).advertiseUrl));
    expect(nsUrls).toHaveLength(2);
    for (const [name, s] of [...byRole('dataserver'), ...byRole('origin')]) {
      expect(String(configOf(s).nameserver).split(','), name).toEqual(nsUrls);
      expect(Object.keys(s.depends_on ?? {}).length, `${name} waits for its dependencies`).toBeGreaterThan(0);
    }
    for (const [name, s] of byRole('dataserver')) expect(Object.keys(s.depends_on ?? {}).sort(), name).toEqual(byRole('nameserver').map(([n]) => n).sort());
    const origins = byRole('origin').map(([name, s]) => ({ name, c: configOf(s) }));
    const urls = origins.map((o) => `http://${o.name}:${o.c.port}`);
    for (const o of origins) {
      expect(o.c.publicUrl).toBe(`http://${o.name}:${o.c.port}`);
      expect([...(o.c.peers as string[])].sort()).toEqual([...urls].sort());
      expect(o.c.cacheBytes as number).toBeGreaterThan(0);
    }
  });

  it('puts the nginx edge in front of both origins with a disk cache', () => {
    const edge = compose.services.edge!;
    const mount = edge.volumes!.find((v) => v.startsWith('./deploy/nginx-edge.conf:'));
    expect(mount).toBeDefined();
    expect(Object.keys(edge.depends_on!).sort()).toEqual(byRole('origin').map(([n]) => n).sort());
    const conf = readFileSync(join(ROOT, 'deploy', 'nginx-edge.conf'), 'utf8');
    const upstream = /upstream\s+(\w+)\s*\{([^}]*)\}/.exec(conf);
    expect(upstream).not.toBeNull();
    const servers = [...upstream![2]!.matchAll(/^\s*server\s+([\w.-]+:\d+)/gm)].map((m) => m[1]);
    const origins = byRole('origin').map(([name, s]) => `${name}:${configOf(s).port}`);
    expect(servers.sort()).toEqual(origins.sort());
    expect(conf).toMatch(new RegExp(`location / \\{\\s*proxy_pass http://${upstream![1]};`));
    expect(conf).toMatch(/^\s*proxy_cache_path \S+ .*keys_zone=(\w+):/m);
    const zone = /keys_zone=(\w+):/.exec(conf)![1];
    expect(conf).toMatch(new RegExp(`^\\s*proxy_cache ${zone};`, 'm'));
    const cacheDir = /proxy_cache_path (\S+)/.exec(conf)![1];
    expect(edge.volumes!.some((v) => v.split(':')[1] === cacheDir)).toBe(true);
  });

  it("lets the origins purge the edge: --purge-edges names the edge's purge server, mounted where the edge config includes it", () => {
    const edge = compose.services.edge!;
    const conf = readFileSync(join(ROOT, 'deploy', 'nginx-edge.conf'), 'utf8');
    const pattern = /^include (nginx-edge-purge\S*)\.conf;/m.exec(conf)![1]!;
    const mount = edge.volumes!.map((v) => v.split(':')).find(([src]) => src === './deploy/compose/nginx-edge-purge.conf');
    expect(mount?.[1]).toMatch(new RegExp(`^/etc/nginx/${pattern.replace('*', '[^/]*')}\\.conf$`));
    const purge = readFileSync(join(ROOT, 'deploy', 'compose', 'nginx-edge-purge.conf'), 'utf8');
    const port = /^\s*listen (\d+);/m.exec(purge)![1];
    expect(purge).toMatch(/proxy_cache_purge ugcfs_edge \$request_uri;/);
    expect(purge).toMatch(/^\s*deny all;/m);
    expect(edge.ports!.some((p) => p.endsWith(`:${port}`)), 'the purge port is not published').toBe(false);
    for (const [name, s] of byRole('origin')) expect(configOf(s).purgeEdges, name).toBe(`http://edge:${port}`);
  });

  it.skipIf(etcdUsable())('etcd members start from their compose flags and elect a leader (service names mapped to loopback)', async () => {
    const t = tempDir('ugcfs-compose-etcd-');
    const ports = new Map<string, [number, number]>();
    for (const [name] of etcds) ports.set(name, [await freePort(), await freePort()]);
    const local = (arg: string, self: string) => {
      let a = arg.replace('http://0.0.0.0:2379', `http://127.0.0.1:${ports.get(self)![0]}`).replace('http://0.0.0.0:2380', `http://127.0.0.1:${ports.get(self)![1]}`);
      for (const [name, [client, peer]] of ports) a = a.replaceAll(`http://${name}:2379`, `http://127.0.0.1:${client}`).replaceAll(`http://${name}:2380`, `http://127.0.0.1:${peer}`);
      return a.startsWith('/var/lib/etcd/') ? join(t.dir, self) : a;
    };
    const children = etcds.map(([name, s]) => {
      const child = spawn(ETCD_BIN, [...s.command!.map((a) => local(a, name)), '--log-level', 'error'], { stdio: 'ignore', env: { PATH: process.env.PATH ?? '', ETCD_UNSUPPORTED_ARCH: 'arm64' } });
      trackChild(child);
      return child;
    });
    try {
      const health = async (port: number) => {
        const r = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(2000) }).catch(() => undefined);
        return r?.ok === true && ((await r.json()) as { health?: string }).health === 'true';
      };
      // /health is true only once the member sees a leader and reads through a quorum.
      await waitFor('every etcd member healthy', async () => (await Promise.all([...ports.values()].map(([c]) => health(c)))).every(Boolean), 30_000, 200);
      const [client] = ports.get(etcds[0]![0])!;
      const list = (await (await fetch(`http://127.0.0.1:${client}/v3/cluster/member/list`, { method: 'POST', body: '{}' })).json()) as { members: Array<{ name: string }> };
      expect(list.members.map((m) => m.name).sort()).toEqual(etcds.map(([n]) => n).sort());
    } finally {
      for (const c of children) c.kill('SIGKILL');
      await Promise.all(children.map((c) => (c.exitCode !== null || c.signalCode !== null ? undefined : new Promise((r) => c.once('exit', r)))));
      t.cleanup();
    }
  });

  const nginx = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((p) => existsSync(p));
  it.skipIf(!nginx)('edge config passes `nginx -t` (service names mapped to loopback; needs Debian package nginx)', () => {
    const t = tempDir('ugcfs-edge-');
    try {
      let conf = readFileSync(join(ROOT, 'deploy', 'nginx-edge.conf'), 'utf8');
      for (const [name] of byRole('origin')) conf = conf.replaceAll(`${name}:`, '127.0.0.1:');
      conf = conf.replace(/proxy_cache_path \S+/, `proxy_cache_path ${join(t.dir, 'cache')}`).replace(/listen 80;/, 'listen 127.0.0.1:65080;'); // nginx -t parses, it does not bind
      mkdirSync(join(t.dir, 'cache'));
      writeFileSync(join(t.dir, 'edge.conf'), conf);
      const main = `daemon off; pid ${t.dir}/nginx.pid; error_log ${t.dir}/error.log; events {}
http { access_log off; client_body_temp_path ${t.dir}/body; proxy_temp_path ${t.dir}/proxy; fastcgi_temp_path ${t.dir}/fcgi; uwsgi_temp_path ${t.dir}/uwsgi; scgi_temp_path ${t.dir}/scgi; include ${t.dir}/edge.conf; }`;
      writeFileSync(join(t.dir, 'nginx.conf'), main);
      const r = spawnSync(nginx!, ['-t', '-p', t.dir, '-c', join(t.dir, 'nginx.conf')], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stderr).toContain('syntax is ok');
    } finally {
      t.cleanup();
    }
  });
});

describe('Dockerfile', () => {
  const df = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };

  it('is multi-stage, installs production dependencies only, runs as a non-root user with a health check', () => {
    expect(df.match(/^FROM /gm)!.length).toBeGreaterThanOrEqual(2);
    // The base is a build argument (deploy/build-base.sh makes one where Docker Hub is out of reach).
    expect(df).toMatch(/^ARG BASE=node:20-bookworm-slim$/m);
    for (const from of df.match(/^FROM \S+/gm)!) expect(from).toBe('FROM ${BASE}');
    expect(df).toMatch(/^RUN npm ci --omit=dev/m);
    expect(df).toMatch(/^COPY --from=deps /m);
    const user = [...df.matchAll(/^USER (\S+)/gm)].at(-1)?.[1];
    expect(user).toBeDefined();
    expect(['root', '0']).not.toContain(user);
    expect(df).toMatch(/^HEALTHCHECK .*/m);
    expect(df).toContain('/healthz');
    // The bin itself, so its shebang's node flags apply (src/base/node-flags.ts).
    expect(df).toMatch(/^ENTRYPOINT \["\/app\/bin\/ugcfs\.mjs"\]/m);
  });

  it('starts every role through the bin, whose shebang applies the declared node flags', async () => {
    const flags = NODE_FLAGS;
    expect(flags).toContain('--max-semi-space-size=16');
    expect(flags).toContain('--initial-old-space-size=64');
    const scripts = (pkg as unknown as { scripts: Record<string, string> }).scripts;
    expect(scripts.start).toMatch(/^\.\/bin\/ugcfs\.mjs server\b/);
    // The bench's load generator (a Node client, in the bench's own process) runs as an ugcfs process would.
    expect(scripts.bench).toBe(`node ${flags.join(' ')} bin/run-ts.mjs bench/run.ts`);
    // Run the way npm start and the image run it: exec the file, not `node file`.
    const t = tempDir();
    const p = await startReady(['nameserver', '--data', t.dir, '--port', '0'], { exec: BIN, cwd: ROOT, env: { ...process.env, UGCFS_CLUSTER_SECRET: TEST_SECRET, UGCFS_LOG_LEVEL: 'info' }, label: 'bin' });
    try {
      const argv = readFileSync(`/proc/${p.child.pid}/cmdline`, 'utf8').split('\0');
      expect(argv.slice(1, 1 + flags.length)).toEqual(flags);
    } finally {
      p.child.kill('SIGKILL');
      await p.exited;
      t.cleanup();
    }
  });

  it('ships everything the roles load at run time (tsx is a runtime dependency)', () => {
    expect(pkg.dependencies.tsx).toBeDefined();
    expect(pkg.devDependencies.tsx).toBeUndefined();
    const copied = [...df.matchAll(/^COPY (?!--from)(?:--\S+ )*(\S+) \.\/\1$/gm)].map((m) => m[1]);
    const ignored = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim());
    for (const dir of ['bin', 'cli', 'src', 'origin', 'nameserver', 'dataserver']) {
      expect(copied, `COPY ${dir}`).toContain(dir);
      expect(ignored).not.toContain(dir);
    }
    // Shipped code must not reach into folders the image leaves out.
    const offenders: string[] = [];
    const walk = (dir: string) => {
      for (const e of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
        const rel = join(dir, e.name);
        if (e.isDirectory()) walk(rel);
        else if (/\.(ts|mjs)$/.test(e.name) && /from ['"](\.\.\/)+(test|bench|deploy|docs)\//.test(readFileSync(join(ROOT, rel), 'utf8'))) offenders.push(rel);
      }
    };
    for (const dir of ['bin', 'cli', 'src', 'origin', 'nameserver', 'dataserver']) walk(dir);
    expect(offenders).toEqual([]);
  });
});
