// The operator's page: polls memgate's admin JSON routes every few seconds and
// draws four parts (memory over time, the start-up waterfall, routes by bytes,
// the fleet). Data shaping is in shape.js; this file only draws. Every text
// from the server goes in through textContent, never as markup.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import './style.css';
import { formatBytes, formatMs, memoryChart, waterfall, routeRows, fleetView, ROUTE_COLUMNS } from './shape.js';

const POLL_MS = 3000;
const TOKEN_KEY = 'memgate-admin-token';

// The token the page was opened with: /dashboard#token=..., kept for this tab
// only and taken out of the address bar (a fragment is never sent to a server).
function takeToken() {
  const m = location.hash.match(/(?:^#|&)token=([^&]*)/);
  if (m) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
    history.replaceState(null, '', location.pathname + location.search);
  }
  return sessionStorage.getItem(TOKEN_KEY) || '';
}
let token = takeToken();

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}
const $ = (id) => document.getElementById(id);
const clock = (ms) => (ms ? new Date(ms).toLocaleTimeString([], { hour12: false }) : '–');

async function getJson(path) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(path, { headers, cache: 'no-store' });
  if (!res.ok) return { status: res.status, body: null };
  return { status: res.status, body: await res.json() };
}

function table(id, head, rows) {
  const t = $(id);
  t.replaceChildren(
    el('thead', {}, el('tr', {}, ...head.map((h) => (h instanceof Node ? h : el('th', { scope: 'col', text: h }))))),
    el('tbody', {}, ...rows),
  );
}
const cell = (text, value) => el('td', { text, 'data-value': value });

// ---- memory over time ----------------------------------------------------

const COLORS = { heap: '#2563eb', rss: '#16a34a', cgroup: '#9333ea', alert: '#d97706', shed: '#dc2626', pressure: '#db2777', limit: '#111827' };
let plot = null;
let plotShape = '';
let current = null;
let selectedAlert = null;

function chartWidth() {
  return Math.max(260, $('memory-chart').clientWidth || 600);
}

function drawMarks(u) {
  if (!current) return;
  const { ctx } = u;
  const { top, height } = u.bbox;
  ctx.save();
  for (const e of current.events) {
    const x = u.valToPos(e.t, 'x', true);
    if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
    ctx.fillStyle = e.inForce ? '#f59e0b' : '#9ca3af';
    ctx.fillRect(x - 1.5 * devicePixelRatio, top, 3 * devicePixelRatio, 8 * devicePixelRatio);
  }
  for (const a of current.alerts) {
    const x = u.valToPos(a.t, 'x', true);
    if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
    ctx.strokeStyle = a === selectedAlert ? '#7f1d1d' : '#dc2626';
    ctx.lineWidth = (a === selectedAlert ? 3 : 2) * devicePixelRatio;
    ctx.beginPath();
    ctx.moveTo(x, top);
    ctx.lineTo(x, top + height);
    ctx.stroke();
  }
  ctx.restore();
}

function renderMemory(history, memory) {
  const c = memoryChart(history, memory);
  current = c;
  const latest = c.latest;
  $('memory-now').replaceChildren(
    latest
      ? el('span', {},
          el('b', { text: 'heap ' }), el('span', { id: 'memory-heap', 'data-value': latest.heap, text: formatBytes(latest.heap) }),
          el('b', { text: ' · RSS ' }), el('span', { id: 'memory-rss', 'data-value': latest.rss, text: formatBytes(latest.rss) }),
          latest.cgroup !== null ? el('b', { text: ' · container ' }) : null,
          latest.cgroup !== null ? el('span', { text: formatBytes(latest.cgroup) }) : null,
          el('span', { text: latest.actions.length ? ` · in force: ${latest.actions.join(', ')}` : ' · no action in force' }))
      : el('span', { text: 'no sample yet' }),
  );
  $('memory-thresholds').replaceChildren(
    ...c.thresholds.map((t) =>
      el('li', { 'data-key': t.key, 'data-value': t.bytes },
        el('span', { class: 'swatch' }), `${t.label}: ${formatBytes(t.bytes)}${t.onChart ? '' : ' (above the chart)'}`)),
  );
  for (const li of $('memory-thresholds').children) li.firstChild.style.borderColor = COLORS[li.dataset.key];

  if (c.x.length) {
    const onChart = c.thresholds.filter((t) => t.onChart);
    const shape = [c.cgroup ? 'c' : '', ...onChart.map((t) => t.key)].join(',');
    const data = [c.x, c.heap, c.rss, ...(c.cgroup ? [c.cgroup] : []), ...onChart.map((t) => c.x.map(() => t.bytes))];
    if (!plot || shape !== plotShape) {
      if (plot) plot.destroy();
      plotShape = shape;
      const series = [
        {},
        { label: 'heap', stroke: COLORS.heap, width: 2, value: (u, v) => formatBytes(v) },
        { label: 'RSS', stroke: COLORS.rss, width: 2, value: (u, v) => formatBytes(v) },
        ...(c.cgroup ? [{ label: 'container', stroke: COLORS.cgroup, width: 2, value: (u, v) => formatBytes(v) }] : []),
        ...onChart.map((t) => ({ label: t.key, stroke: COLORS[t.key], dash: [6, 4], width: 1.5, points: { show: false }, value: (u, v) => formatBytes(v) })),
      ];
      plot = new uPlot(
        {
          width: chartWidth(),
          height: 240,
          series,
          scales: { y: { range: () => [0, current ? current.yMax : 1] } },
          axes: [{}, { size: 70, values: (u, vals) => vals.map(formatBytes) }],
          hooks: { draw: [drawMarks] },
          cursor: { drag: { x: false, y: false } },
        },
        data,
        $('memory-chart'),
      );
      plot.over.addEventListener('click', () => {
        const left = plot.cursor.left;
        if (left === undefined || left < 0 || !current.alerts.length) return;
        const t = plot.posToVal(left, 'x');
        const span = (current.x[current.x.length - 1] - current.x[0]) || 1;
        let best = null;
        for (const a of current.alerts) if (!best || Math.abs(a.t - t) < Math.abs(best.t - t)) best = a;
        if (best && Math.abs(best.t - t) < span * 0.05) showSnapshot(best);
      });
    } else {
      plot.setData(data);
    }
  } else if (!plot) {
    $('memory-chart').replaceChildren(el('p', { class: 'empty', text: 'no sample yet (the guard samples every MONITOR_INTERVAL)' }));
  }

  $('memory-alerts').replaceChildren(
    ...(c.alerts.length
      ? [...c.alerts].reverse().map((a) =>
          el('li', { 'data-ts': a.ts_ms },
            el('a', { href: `#${a.id}`, onclick: (ev) => { ev.preventDefault(); showSnapshot(a); } },
              `${clock(a.ts_ms)} ${a.trigger || 'alert'}`),
            ` · heap ${formatBytes(a.heap)} · ${a.instance}`,
            a.heapProfile ? ` · heap profile ${a.heapProfile}` : ''))
      : [el('li', { class: 'empty', text: 'no alert kept' })]),
  );
  if (selectedAlert) {
    const again = c.alerts.find((a) => a.id === selectedAlert.id);
    selectedAlert = again || null;
  }
}

// The profile an alert took, fetched with the page's token (a plain link
// could not send it) and handed to the browser as a download.
function profileLink(path) {
  const name = String(path).split('/').pop();
  return el('a', {
    href: `/debug/pprof/saved?name=${encodeURIComponent(name)}`,
    'data-profile': name,
    onclick: async (ev) => {
      ev.preventDefault();
      const headers = token ? { Authorization: `Bearer ${token}` } : {};
      const res = await fetch(ev.currentTarget.getAttribute('href'), { headers, cache: 'no-store' });
      if (!res.ok) return;
      const url = URL.createObjectURL(await res.blob());
      const save = el('a', { href: url, download: name });
      document.body.append(save);
      save.click();
      save.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    },
    text: name,
  });
}

function showSnapshot(a) {
  selectedAlert = a;
  if (plot) plot.redraw(false, false);
  const s = a.snapshot;
  const json = JSON.stringify(s, null, 2);
  const url = URL.createObjectURL(new Blob([json], { type: 'application/json' }));
  const routes = a.topRoutes.map((r) =>
    el('tr', {}, cell(String(r.route ?? '')), cell(formatBytes(r.allocated_bytes ?? r.allocated), r.allocated_bytes), cell(formatBytes(r.held_bytes), r.held_bytes)));
  const panel = $('snapshot');
  panel.hidden = false;
  panel.id = 'snapshot';
  panel.replaceChildren(
    el('h3', { id: a.id, text: `Snapshot of ${clock(a.ts_ms)} (${a.instance})` }),
    el('dl', { class: 'kv' },
      el('dt', { text: 'trigger' }), el('dd', { text: a.trigger }),
      el('dt', { text: 'actions' }), el('dd', { text: a.actions.join(', ') || '–' }),
      el('dt', { text: 'heap' }), el('dd', { text: formatBytes(a.heap) }),
      el('dt', { text: 'RSS' }), el('dd', { text: formatBytes(a.rss) }),
      el('dt', { text: 'heap profile' }), el('dd', {}, a.heapProfile ? profileLink(a.heapProfile) : 'none taken (MEMGATE_HEAP_PROFILE=1 takes one per alert)')),
    routes.length
      ? el('div', { class: 'scroll' }, el('table', {}, el('thead', {}, el('tr', {}, el('th', { text: 'top route' }), el('th', { text: 'allocated' }), el('th', { text: 'held' }))), el('tbody', {}, ...routes)))
      : null,
    el('p', {}, el('a', { href: url, download: `memgate-snapshot-${a.ts_ms}.json`, text: 'the snapshot as JSON' }),
      ' · ', el('a', { href: '#', onclick: (ev) => { ev.preventDefault(); panel.hidden = true; selectedAlert = null; if (plot) plot.redraw(false, false); }, text: 'close' })),
    el('pre', { text: json.length > 20000 ? `${json.slice(0, 20000)}\n…` : json }),
  );
  panel.scrollIntoView({ block: 'nearest' });
}

// ---- start-up waterfall ---------------------------------------------------

function renderStartup(startupz) {
  const w = waterfall(startupz);
  const pct = (ms) => `${((ms / w.end) * 100).toFixed(3)}%`;
  const bar = (b, cls) =>
    el('div', { class: `bar ${cls}`, title: `${b.state}: ${formatMs(b.to - b.from)} (from ${formatMs(b.from)} to ${formatMs(b.to)} after exec)`, 'data-state': b.state, 'data-from': Math.round(b.from), 'data-to': Math.round(b.to) });
  const rows = [];
  const track = (bars, markers = []) => el('div', { class: 'track' }, ...bars, ...markers);
  const tick = (cls, at, title) => {
    const t = el('div', { class: `tick ${cls}`, title });
    t.style.left = pct(at);
    return t;
  };
  const place = (node, from, to) => {
    node.style.left = pct(from);
    node.style.width = `max(2px, ${pct(Math.max(0, to - from))})`;
    return node;
  };
  if (w.listening !== null && w.listening >= 0)
    rows.push(el('div', { class: 'row' }, el('div', { class: 'label', text: `listening at ${formatMs(w.listening)}` }),
      track([], [tick('listen', w.listening, `listening ${formatMs(w.listening)} after exec`),
        tick('loader', w.loaderStarted, `loader started ${formatMs(w.loaderStarted)} after exec`)])));
  for (const s of w.stages)
    rows.push(el('div', { class: 'row stage' }, el('div', { class: 'label', text: `stage ${s.stage} · peak ${formatBytes(s.peak)}` }),
      track([place(bar({ state: `stage ${s.stage}`, from: s.from, to: s.to }, 'state-stage'), s.from, s.to)])));
  for (const m of w.modules)
    rows.push(el('div', { class: 'row module', 'data-module': m.name },
      el('div', { class: 'label', text: `${m.name} · ${m.outcome}` }),
      track(m.bars.map((b) => place(bar(b, `state-${b.state.replace(/[^a-z_]/g, '')}`), b.from, b.to)),
        m.readyAt !== null ? [tick('end', m.readyAt, `${m.state} at ${formatMs(m.readyAt)} after exec`)] : [])));
  const wf = $('startup-waterfall');
  wf.replaceChildren(
    ...rows,
    el('div', { class: 'row axis' }, el('div', { class: 'label', text: '' }),
      el('div', { class: 'track scale' }, el('span', { text: '0 (exec)' }), el('span', { text: formatMs(w.end) }))),
  );
  $('startup-now').textContent =
    `${w.mode || 'staged'} start-up · ${w.finished ? 'finished' : 'running'} · ${w.ready ? 'ready' : 'not ready'} · start-up peak RSS ${formatBytes(w.peak)}`;
  table('startup-table', ['module', 'stage', 'outcome', 'built by', 'time', 'heap Δ', 'RSS Δ', 'peak', 'ready at'],
    w.modules.map((m) =>
      el('tr', { 'data-module': m.name },
        el('th', { scope: 'row', text: m.name }), cell(String(m.stage)), cell(m.outcome), cell(m.builtBy || '–'),
        cell(formatMs(m.durationMs), m.durationMs), cell(formatBytes(m.heapDelta), m.heapDelta), cell(formatBytes(m.rssDelta), m.rssDelta),
        cell(formatBytes(m.peak), m.peak), cell(m.readyAt !== null ? formatMs(m.readyAt) : '–', m.readyAt))));
}

// ---- routes by bytes ------------------------------------------------------

let routeSort = { key: 'allocated', asc: false };
let lastRoutes = null;
const ROUTE_HEADS = { route: 'route', requests: 'requests', allocated: 'allocated', perRequest: 'per request', held: 'held now' };

function renderRoutes(routes) {
  lastRoutes = routes;
  const { available, rows } = routeRows(routes, routeSort.key, routeSort.asc);
  const head = ROUTE_COLUMNS.map((k) =>
    el('th', { scope: 'col', 'aria-sort': routeSort.key === k ? (routeSort.asc ? 'ascending' : 'descending') : 'none' },
      el('button', { type: 'button', 'data-sort': k, onclick: () => {
        routeSort = { key: k, asc: routeSort.key === k ? !routeSort.asc : k === 'route' };
        renderRoutes(lastRoutes);
      } }, ROUTE_HEADS[k] + (routeSort.key === k ? (routeSort.asc ? ' ▲' : ' ▼') : ''))));
  table('routes-table', head,
    rows.length
      ? rows.map((r) =>
          el('tr', { 'data-route': r.route },
            el('th', { scope: 'row', text: r.route }), cell(String(r.requests), r.requests), cell(formatBytes(r.allocated), r.allocated),
            cell(formatBytes(r.perRequest), r.perRequest), cell(formatBytes(r.held), r.held)))
      : [el('tr', {}, el('td', { colspan: 5, class: 'empty', text: available ? 'no request accounted yet' : 'allocation accounting is off or not available' }))]);
}

// ---- the fleet ------------------------------------------------------------

function renderFleet(coord) {
  const f = fleetView(coord);
  const kv = (k, v, id) => [el('dt', { text: k }), el('dd', { text: v, id })];
  $('fleet-summary').replaceChildren(
    ...kv('backend', f.backend, 'fleet-backend'),
    ...kv('master in use', f.master || (f.backend === 'local' ? 'none (lock files on this host)' : '–'), 'fleet-master'),
    ...kv('connection', f.connection || '–'),
    ...kv('reconnects · lost leases', `${f.reconnects} · ${f.lostLeases}`),
    ...kv('fleet_once so far', f.totals.map((t) => `${t.outcome} ${t.count}`).join(', ') || 'none', 'fleet-totals'),
    ...kv('leases held now', f.held.length ? f.held.map((l) => `${l.key} (fence ${l.fence})`).join(', ') : 'none'),
  );
  table('fleet-artifacts', ['module', 'fingerprint', 'published by', 'size', 'build peak', 'load peak', 'here'],
    f.artifacts.length
      ? f.artifacts.map((a) =>
          el('tr', { 'data-fingerprint': a.fingerprint },
            el('th', { scope: 'row', text: a.module }), el('td', { title: a.inputs, text: a.fingerprint }),
            cell(a.published ? a.builder || '?' : a.reachable ? 'not published' : 'fleet not reachable'),
            cell(formatBytes(a.size), a.size), cell(formatBytes(a.buildPeak), a.buildPeak), cell(formatBytes(a.loadPeak), a.loadPeak),
            cell(a.serving ? 'serving' : '–')))
      : [el('tr', {}, el('td', { colspan: 7, class: 'empty', text: 'no fleet-shared module has stepped yet' }))]);
  table('fleet-leases', ['key', 'fence', 'backend', 'TTL', 'held for', 'extensions', 'now'],
    f.recentLeases.length
      ? f.recentLeases.map((l) =>
          el('tr', {}, el('th', { scope: 'row', text: l.key }), cell(String(l.fence), l.fence), cell(l.backend), cell(formatMs(l.ttlMs), l.ttlMs),
            cell(formatMs(l.heldMs), l.heldMs), cell(String(l.extensions)), cell(l.held ? 'held' : 'released')))
      : [el('tr', {}, el('td', { colspan: 7, class: 'empty', text: 'no lease taken yet' }))]);
  table('fleet-outcomes', ['when', 'name', 'outcome', 'took', 'error'],
    f.outcomes.length
      ? f.outcomes.map((o) =>
          el('tr', { 'data-outcome': o.outcome }, cell(clock(o.at), o.at), el('th', { scope: 'row', text: o.name }), cell(o.outcome),
            cell(formatMs(o.durationMs), o.durationMs), cell(o.error || '–')))
      : [el('tr', {}, el('td', { colspan: 5, class: 'empty', text: 'no fleet_once call yet' }))]);
}

// ---- polling --------------------------------------------------------------

const PARTS = [
  { id: 'memory', paths: ['/debug/memory/history', '/debug/memory'], render: renderMemory },
  { id: 'startup', paths: ['/startupz'], render: renderStartup },
  { id: 'routes', paths: ['/debug/memory/routes?n=50'], render: renderRoutes },
  { id: 'fleet', paths: ['/debug/coord'], render: renderFleet },
];

function setStatus(text, bad) {
  const s = $('status');
  s.textContent = text;
  s.classList.toggle('bad', !!bad);
}

async function poll() {
  const cache = new Map();
  const get = (p) => {
    if (!cache.has(p)) cache.set(p, getJson(p).catch(() => ({ status: 0, body: null })));
    return cache.get(p);
  };
  let unauthorized = false;
  const problems = [];
  await Promise.all(
    PARTS.map(async (part) => {
      const answers = await Promise.all(part.paths.map(get));
      const bad = answers.find((a) => a.status !== 200);
      const section = $(part.id);
      if (bad) {
        unauthorized ||= bad.status === 401;
        problems.push(`${part.paths[0]}: ${bad.status ? `HTTP ${bad.status}` : 'no answer'}`);
        section.dataset.stale = '1';
        return;
      }
      try {
        part.render(...answers.map((a) => a.body));
        section.dataset.ready = '1';
        delete section.dataset.stale;
      } catch (e) {
        problems.push(`${part.id}: ${e.message}`);
      }
    }),
  );
  const mem = (await get('/debug/memory')).body;
  if (mem && typeof mem.instance === 'string') $('instance').textContent = mem.instance;
  $('token-form').hidden = !unauthorized;
  if (unauthorized) setStatus('this admin listener needs ADMIN_TOKEN: open /dashboard#token=<ADMIN_TOKEN> or paste it below', true);
  else if (problems.length) setStatus(`updated ${clock(Date.now())}, with problems: ${problems.join('; ')}`, true);
  else setStatus(`updated ${clock(Date.now())} · every ${POLL_MS / 1000} s`, false);
}

async function loop() {
  try {
    await poll();
  } finally {
    setTimeout(loop, POLL_MS);
  }
}

$('token-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  token = $('token-input').value.trim();
  sessionStorage.setItem(TOKEN_KEY, token);
  $('token-input').value = '';
  poll();
});
window.addEventListener('resize', () => {
  if (plot) plot.setSize({ width: chartWidth(), height: 240 });
});
loop();
