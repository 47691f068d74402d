// The name server's status page (GET /) rendered by a real headless Chromium: it must show
// the live numbers of GET /status. Needs Debian's `chromium` package; skips without it.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClusterStatus } from '../../src/wire/protocol.ts';
import { CORPUS, run, waitFor } from '../helpers/proc.ts';
import { startAllInOne, type AllInOne } from './all-in-one.ts';
import { startCluster, type Cluster } from '../helpers/cluster.ts';

const CHROMIUM = '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
/** The screenshot is kept for people to look at; its path is printed. */
export const SCREENSHOT = join(tmpdir(), 'ugcfs-status-page.png');
export const SCREENSHOT_DEGRADED = join(tmpdir(), 'ugcfs-status-page-degraded.png');

// One `ugcfs server` serves the page's access checks and, with Chromium, its rendering.
describe('status page of ugcfs server', () => {
  let s: AllInOne;
  let profile: string;
  beforeAll(async () => {
    // one origin process: the page is the name server's
    s = await startAllInOne({ args: ['--dataservers', '3', '--origin-workers', '1'] });
    profile = mkdtempSync(join(tmpdir(), 'ugcfs-chromium-'));
    const body = readFileSync(join(CORPUS, 'photos', 'Aqua.jpg'));
    const res = await fetch(`${s.origin}/upload`, { method: 'POST', headers: { 'content-type': 'image/jpeg', ...s.uploadAuth }, body });
    expect(res.status).toBe(201);
  }, 90_000);
  afterAll(async () => {
    await s?.stop();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  it.skipIf(!haveChromium)('shows the data servers, blocks and health that GET /status reports, in headless Chromium (needs Debian package chromium)', async () => {
    // An operation run through the admin CLI must show up on the page.
    const verify = await run(['verify', '--nameserver', s.nameserver], { env: s.cliEnv });
    expect(verify.code, verify.stderr).toBe(0);
    const status = await waitFor('three live data servers with the upload counted', async () => {
      const st = (await (await fetch(`${s.nameserver}/status`, { headers: s.secretHeaders })).json()) as ClusterStatus;
      return st.dataservers.filter((d) => d.alive).length === 3 && st.usedBytes > 0 ? st : undefined;
    });
    const { chromium } = await import('playwright-core');
    // A fresh profile directory per run (playwright passes it as --user-data-dir).
    const browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1200, height: 800 },
      // The README's way in: any user name, the admin token of data/secrets.env as password.
      httpCredentials: { username: 'ops', password: s.secrets.UGCFS_ADMIN_TOKEN! },
    });
    try {
      const page = browser.pages()[0] ?? (await browser.newPage());
      const res = await page.goto(`${s.nameserver}/`);
      expect(res?.status()).toBe(200);
      expect(res?.headers()['content-type']).toMatch(/^text\/html/);
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
      console.log(`status page screenshot: ${SCREENSHOT}`);

      expect(await page.getByTestId('dataserver-count').textContent()).toBe(String(status.dataservers.length));
      expect(await page.getByTestId('alive').textContent()).toBe(`3 / 3`);
      expect(await page.getByTestId('blocks').textContent()).toBe(String(status.blocks));
      expect(await page.getByTestId('under-replicated').textContent()).toBe(String(status.underReplicatedBlocks));
      const rows = await page.locator('tr[data-ds]').evaluateAll((trs) => trs.map((tr) => (tr as HTMLElement).innerText));
      expect(rows).toHaveLength(status.dataservers.length);
      for (const d of status.dataservers) {
        const row = rows.find((r) => r.startsWith(d.id));
        expect(row, `row for ${d.id}`).toBeDefined();
        expect(row).toContain('alive');
        expect(row).toContain(d.url);
      }
      // Capacity bars are drawn: every data server row has a filled bar whose width is its share.
      const widths = await page.locator('tr[data-ds] .fill').evaluateAll((els) => els.map((e) => (e as HTMLElement).style.width));
      expect(widths).toHaveLength(status.dataservers.length);
      for (const w of widths) expect(w).toMatch(/^\d+(\.\d)?%$/);
      const ops = await page.locator('tr[data-op]').evaluateAll((trs) => trs.map((tr) => (tr as HTMLElement).innerText));
      expect(ops.some((o) => o.startsWith('verify') && o.includes('done')), ops.join(' | ')).toBe(true);
      // It refreshes itself, without scripts.
      expect(await page.locator('meta[http-equiv="refresh"]').getAttribute('content')).toBe('5');
      expect(await page.locator('script').count()).toBe(0);
      // No external assets: the page loads nothing but itself.
      const requests: string[] = [];
      page.on('request', (r) => requests.push(r.url()));
      await page.reload();
      expect(requests).toEqual([`${s.nameserver}/`]);
      const png = readFileSync(SCREENSHOT);
      expect(png.subarray(1, 4).toString()).toBe('PNG');
    } finally {
      await browser.close();
    }
  }, 90_000);

  it('asks for credentials with a Basic challenge and accepts the admin token or secret as password', async () => {
    const anon = await fetch(`${s.nameserver}/`);
    expect(anon.status).toBe(401);
    expect(anon.headers.get('www-authenticate')).toMatch(/^Basic /);
    expect(((await anon.json()) as { error: { code: string } }).error.code).toBe('UGCFS_ERR_UNAUTHORIZED');
    const wrong = await fetch(`${s.nameserver}/`, { headers: { authorization: 'Basic ' + Buffer.from('admin:nope').toString('base64') } });
    expect(wrong.status).toBe(401);
    const admin = s.secrets.UGCFS_ADMIN_TOKEN!;
    for (const password of [admin, s.secrets.UGCFS_CLUSTER_SECRET!]) {
      const ok = await fetch(`${s.nameserver}/`, { headers: { authorization: 'Basic ' + Buffer.from(`admin:${password}`).toString('base64') } });
      expect(ok.status).toBe(200);
      expect(await ok.text()).toContain('data-testid="dataserver-count">3<');
    }
    const bearer = await fetch(`${s.nameserver}/`, { headers: { authorization: `Bearer ${admin}` } });
    expect(bearer.status).toBe(200);
  });
});

describe.skipIf(!haveChromium)('status page of a degraded cluster in headless Chromium (needs Debian package chromium)', () => {
  let c: Cluster;
  let profile: string;
  beforeAll(async () => {
    // A long repair delay keeps the cluster degraded while the page is looked at.
    c = await startCluster({ dataservers: 3, racks: ['a', 'b', 'c'], replicas: 2, repairDelayMs: 600_000 });
    profile = mkdtempSync(join(tmpdir(), 'ugcfs-chromium-'));
    await c.waitForAlive();
    for (let i = 0; i < 6; i++) await c.client.write(Buffer.alloc(20_000, i), { mime: 'application/octet-stream' });
  }, 120_000);
  afterAll(async () => {
    await c?.stop();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  it('shows the dead data server, its rack and the under-replicated blocks', async () => {
    await c.killDataserver(2);
    const status = await c.waitFor((st) => st.dataservers.filter((d) => d.alive).length === 2 && st.underReplicatedBlocks > 0, 'ds-3 dead, blocks under-replicated');
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1200, height: 800 },
      // The browser answers the page's Basic challenge with the cluster secret as password.
      httpCredentials: { username: 'ops', password: c.secret },
    });
    try {
      const page = browser.pages()[0] ?? (await browser.newPage());
      expect((await page.goto(`${c.nameserver.url}/`))?.status()).toBe(200);
      await page.screenshot({ path: SCREENSHOT_DEGRADED, fullPage: true });
      console.log(`degraded status page screenshot: ${SCREENSHOT_DEGRADED}`);
      expect(await page.getByTestId('alive').textContent()).toBe('2 / 3');
      const under = Number(await page.getByTestId('under-replicated').textContent());
      // Repair is held off, so the count can only have stayed or grown since /status was read.
      expect(under).toBeGreaterThanOrEqual(status.underReplicatedBlocks);
      expect(await page.getByTestId('health').innerText()).toContain(`${under} block${under === 1 ? '' : 's'} under-replicated`);
      const dead = await page.locator('tr[data-ds="ds-3"]').innerText();
      expect(dead).toContain('dead');
      expect(dead).toContain('c');
      for (const id of ['ds-1', 'ds-2']) expect(await page.locator(`tr[data-ds="${id}"]`).innerText()).toContain('alive');
    } finally {
      await browser.close();
    }
  }, 120_000);
});
