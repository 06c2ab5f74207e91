// Loads the admin page of a running memgate in Debian's Chromium (playwright-core,
// no browser download) and checks that each of the four parts shows this
// instance's own numbers, read from the same JSON routes, with no console error.
//
//   node tests/browser.mjs <admin base URL> <ADMIN_TOKEN or ""> <screenshot.png> [expected master]
//
// Prints one line per check; exits 0 when all passed, 1 otherwise. Bounded:
// every wait has a timeout and the whole run stops after 60 s.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [base, token, screenshot, expectedMaster] = process.argv.slice(2);
if (!base || !screenshot) {
  console.log('usage: browser.mjs <admin base URL> <token> <screenshot.png> [expected master]');
  process.exit(2);
}
const overall = setTimeout(() => {
  console.log('FAIL: the browser test took longer than 60 s');
  process.exit(1);
}, 60_000);

const failures = [];
const check = (ok, what, detail = '') => {
  console.log(`${ok ? 'ok' : 'FAIL'}: ${what}${detail ? ` (${detail})` : ''}`);
  if (!ok) failures.push(what);
};
const api = async (path) => {
  const res = await fetch(base + path, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
  return res.json();
};

// A fresh profile each run (playwright passes it as --user-data-dir).
const profile = mkdtempSync(join(tmpdir(), 'memgate-chromium-'));
let context = null;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  const page = context.pages()[0] || (await context.newPage());
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
  const outside = [];
  page.on('request', (r) => { if (!r.url().startsWith(base) && !r.url().startsWith('data:') && !r.url().startsWith('blob:')) outside.push(r.url()); });

  await page.goto(`${base}/dashboard${token ? `#token=${encodeURIComponent(token)}` : ''}`, { waitUntil: 'load', timeout: 15_000 });
  await page.waitForFunction(
    () => ['memory', 'startup', 'routes', 'fleet'].every((id) => document.getElementById(id).dataset.ready === '1'),
    null, { timeout: 20_000 });
  check(await page.evaluate(() => location.hash === ''), 'the token left the address bar');

  // The figures the page must show, from the same routes.
  const [history, memory, startupz, routes, coord] = await Promise.all(
    ['/debug/memory/history', '/debug/memory', '/startupz', '/debug/memory/routes?n=50', '/debug/coord'].map(api));

  // 1. Memory over time.
  const snapshotTs = history.snapshots.map((s) => String(s.ts_ms));
  await page.waitForFunction((n) => document.querySelectorAll('#memory-alerts li[data-ts]').length >= n, snapshotTs.length, { timeout: 10_000 });
  const alertTs = await page.$$eval('#memory-alerts li[data-ts]', (lis) => lis.map((li) => li.dataset.ts));
  check(snapshotTs.length > 0 && snapshotTs.every((t) => alertTs.includes(t)), 'every kept alert is marked and listed', `${alertTs.join(',')}`);
  const heap = Number(await page.getAttribute('#memory-heap', 'data-value'));
  check(heap > 0, 'the live heap is a real number', `${heap}`);
  const alertLine = Number(await page.getAttribute('#memory-thresholds li[data-key="alert"]', 'data-value'));
  check(alertLine === memory.guard.triggers.find((t) => t.name === 'heap_alert').on, 'the alert threshold line is the guard\'s', `${alertLine}`);
  check((await page.$$('#memory-chart canvas')).length > 0, 'the chart is drawn');
  await page.click('#memory-alerts li[data-ts] a');
  const snapshotTitle = await page.textContent('#snapshot h3');
  check(/Snapshot of/.test(snapshotTitle || ''), 'an alert opens its snapshot', snapshotTitle);
  const trigger = await page.textContent('#snapshot dd');
  check(trigger === history.snapshots[0].trigger || history.snapshots.some((s) => s.trigger === trigger), 'the snapshot names its trigger', trigger);

  // 2. Start-up waterfall.
  const kb = startupz.modules.find((m) => m.name === 'kb');
  const bars = await page.$$eval('.row.module[data-module="kb"] .bar', (b) => b.map((x) => x.dataset.state));
  check(bars.includes('building') || bars.includes('loading_artifact'), 'the kb has its steps as bars', bars.join(','));
  const outcome = await page.textContent('#startup-table tr[data-module="kb"] td:nth-of-type(2)');
  check(outcome === kb.outcome, 'the kb\'s outcome', `${outcome} vs ${kb.outcome}`);
  const readyAt = Number(await page.getAttribute('#startup-table tr[data-module="kb"] td:nth-of-type(8)', 'data-value'));
  const expectedReady = startupz.since_exec_ms.loader_started + kb.phases[kb.phases.length - 1].at_ms;
  check(readyAt === expectedReady && readyAt > 0, 'the kb was ready at its time from exec', `${readyAt} ms`);

  // 3. Routes by bytes, sortable.
  const alloc = routes.by_allocated.find((r) => r.route === '/test/alloc');
  const requests = Number(await page.getAttribute('#routes-table tr[data-route="/test/alloc"] td:nth-of-type(1)', 'data-value'));
  check(alloc && requests === alloc.requests, 'the test route\'s requests', `${requests}`);
  await page.click('#routes-table button[data-sort="held"]');
  const firstHeld = await page.getAttribute('#routes-table tbody tr:first-child', 'data-route');
  const heldTop = [...routes.by_held].sort((a, b) => b.held_bytes - a.held_bytes)[0];
  check(firstHeld === heldTop.route, 'sorted by bytes held', `${firstHeld}`);

  // 4. The fleet.
  check((await page.textContent('#fleet-backend')) === coord.backend && coord.backend === 'redis', 'the coordination backend', coord.backend);
  const master = await page.textContent('#fleet-master');
  check(master === coord.master && (!expectedMaster || master === expectedMaster), 'the master in use', master);
  const size = Number(await page.getAttribute(`#fleet-artifacts tr[data-fingerprint="${kb.fingerprint}"] td:nth-of-type(3)`, 'data-value'));
  const artifact = coord.artifacts.find((a) => a.fingerprint === kb.fingerprint);
  check(artifact && size === artifact.size_bytes && size > 0, 'the kb artifact by its fingerprint, with its size', `${size}`);
  const fences = await page.$$eval('#fleet-leases tbody td:nth-of-type(1)', (tds) => tds.map((t) => Number(t.dataset.value)));
  check(fences.length > 0 && fences.every((f) => f > 0), 'leases with their fences', fences.join(','));
  const outcomes = await page.$$eval('#fleet-outcomes tbody tr[data-outcome]', (trs) => trs.map((t) => t.dataset.outcome));
  check(outcomes.includes(kb.outcome), 'the kb\'s fleet_once outcome is listed', outcomes.join(','));

  await page.screenshot({ path: screenshot, fullPage: true });

  // Narrow: one column, nothing wider than the screen.
  await page.setViewportSize({ width: 380, height: 800 });
  await page.waitForTimeout(300);  // a resize, not a timer of memgate's
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 1, 'usable at 380 px: no sideways scrolling of the page', `${overflow} px over`);

  check(outside.length === 0, 'no request left memgate', outside.join(' '));
  check(errors.length === 0, 'no console error', errors.join(' | '));
} catch (e) {
  check(false, 'the page loaded and rendered', e.message);
} finally {
  if (context) await context.close();
  rmSync(profile, { recursive: true, force: true });
  clearTimeout(overall);
}
console.log(`${failures.length ? 'FAILED' : 'PASSED'}: ${failures.length} check(s) failed`);
process.exit(failures.length ? 1 : 0);
