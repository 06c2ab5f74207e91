// Data shaping for the operator's page: pure functions from the JSON that
// memgate's admin routes answer to what the page draws. No DOM here, so
// Vitest runs it in Node (shape.test.js). Every input is treated as untrusted
// shape: a missing or wrong-typed field gives an empty or zero result, never
// an exception.

const num = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const arr = (v) => (Array.isArray(v) ? v : []);
const obj = (v) => (v && typeof v === 'object' && !Array.isArray(v) ? v : {});
const str = (v) => (typeof v === 'string' ? v : '');

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

// 1536 -> "1.5 KiB"; null -> "–".
export function formatBytes(n) {
  n = num(n);
  if (n === null) return '–';
  const sign = n < 0 ? '-' : '';
  let v = Math.abs(n);
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  return `${sign}${u === 0 ? v : v.toFixed(v >= 100 ? 0 : 1)} ${UNITS[u]}`;
}

// 1234 -> "1.23 s"; 45 -> "45 ms".
export function formatMs(ms) {
  ms = num(ms);
  if (ms === null || ms < 0) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(2)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

// The memory chart: /debug/memory/history (samples, events, snapshots) and
// /debug/memory (limits, guard triggers, cgroup) to uPlot's columns
// (x in seconds), the threshold lines, and the marks.
export function memoryChart(history, memory) {
  const h = obj(history);
  const m = obj(memory);
  const samples = arr(h.samples).filter((s) => num(obj(s).ts_ms) !== null);
  const x = samples.map((s) => s.ts_ms / 1000);
  const heap = samples.map((s) => num(s.heap));
  const rss = samples.map((s) => num(s.rss));
  const limits = obj(m.limits);
  const container = num(obj(m.cgroup).limit);
  // A cgroup without a limit is no container: its usage is others' too.
  const cgroup = samples.map((s) => (container !== null ? num(s.cgroup_usage) : null));
  const hasCgroup = cgroup.some((v) => v !== null);

  const triggers = arr(obj(m.guard).triggers).map(obj);
  const triggerOn = (name) => num((triggers.find((t) => t.name === name) || {}).on);
  const thresholds = [];
  const add = (key, label, bytes) => {
    if (bytes !== null && bytes > 0) thresholds.push({ key, label, bytes });
  };
  add('alert', 'alert (HEAP_ALERT_THRESHOLD)', triggerOn('heap_alert') ?? num(limits.heap_alert_threshold));
  add('shed', 'shed (HEAP_SHED_THRESHOLD)', triggerOn('heap_shed') ?? num(limits.heap_shed_threshold));
  if (container !== null) {
    add('pressure', 'cgroup pressure (CGROUP_PRESSURE_THRESHOLD)', triggerOn('cgroup_pressure'));
    add('limit', 'container limit', container);
  }

  // The y axis shows the data, the alert line and any line within twice that;
  // a line far above (a 3.5 GiB shed threshold over a 100 MiB heap) is listed
  // instead of flattening the chart.
  const dataMax = Math.max(0, ...heap, ...rss, ...cgroup.filter((v) => v !== null));
  const alert = thresholds.find((t) => t.key === 'alert');
  let yMax = Math.max(dataMax, alert ? alert.bytes : 0) * 1.15 || 1;
  for (const t of thresholds) t.onChart = t.bytes <= 2 * yMax;
  yMax = Math.max(yMax, ...thresholds.filter((t) => t.onChart).map((t) => t.bytes * 1.05));

  const snapshots = arr(h.snapshots).map(obj).filter((s) => num(s.ts_ms) !== null);
  const alerts = snapshots
    .map((s) => ({
      id: `alert-${s.ts_ms}-${str(s.instance)}`,
      t: s.ts_ms / 1000,
      ts_ms: s.ts_ms,
      instance: str(s.instance),
      trigger: str(s.trigger),
      heap: num(obj(obj(s.memory).allocator).allocated),
      rss: num(obj(obj(s.memory).process).rss),
      actions: arr(s.actions).map(str),
      topRoutes: arr(s.top_routes).map(obj),
      heapProfile: str(s.heap_profile) || null,
      snapshot: s,
    }))
    .sort((a, b) => a.t - b.t);
  const events = arr(h.events)
    .map(obj)
    .filter((e) => num(e.ts_ms) !== null)
    .map((e) => ({ t: e.ts_ms / 1000, action: str(e.action), inForce: e.in_force === true, trigger: str(e.trigger) }));

  const last = samples.length ? samples[samples.length - 1] : null;
  return {
    x,
    heap,
    rss,
    cgroup: hasCgroup ? cgroup : null,
    thresholds,
    yMax,
    alerts,
    events,
    latest: last
      ? { heap: num(last.heap), rss: num(last.rss), cgroup: container !== null ? num(last.cgroup_usage) : null, actions: arr(last.actions).map(str) }
      : null,
  };
}

const FINAL = new Set(['ready', 'failed', 'skipped(flag)', 'skipped(memory)']);

// The start-up waterfall from /startupz: every module's phases as bars on the
// time axis from exec (ms), the stages as bars, and the axis's end.
export function waterfall(startupz) {
  const z = obj(startupz);
  const exec = obj(z.since_exec_ms);
  const base = Math.max(0, num(exec.loader_started) ?? 0);
  const listening = num(exec.listening);
  const elapsed = Math.max(0, num(z.elapsed_ms) ?? 0);
  const end = base + elapsed;
  const modules = arr(z.modules)
    .map(obj)
    .map((m) => {
      const marks = arr(m.phases)
        .map(obj)
        .filter((p) => num(p.at_ms) !== null)
        .map((p) => ({ state: str(p.state), at: base + p.at_ms }));
      const bars = [];
      if (marks.length && !FINAL.has(marks[0].state) && marks[0].at > base)
        bars.push({ state: 'pending', from: base, to: marks[0].at });
      marks.forEach((p, i) => {
        if (FINAL.has(p.state)) return;  // a final state is the bar's end, not a bar
        const to = i + 1 < marks.length ? marks[i + 1].at : end;  // still in this step: until now
        bars.push({ state: p.state, from: p.at, to: Math.max(p.at, to) });
      });
      if (!marks.length && !FINAL.has(str(m.state))) bars.push({ state: str(m.state) || 'pending', from: base, to: end });
      const mem = obj(m.memory);
      const state = str(m.state);
      return {
        name: str(m.name),
        stage: num(m.stage) ?? 0,
        state,
        outcome: state.startsWith('skipped') || state === 'failed' ? `${state}${m.reason ? `: ${str(m.reason)}` : ''}` : str(m.outcome) || state,
        reason: str(m.reason),
        builtBy: str(m.built_by),
        durationMs: num(m.duration_ms),
        heapDelta: num(m.heap_delta_bytes),
        rssDelta: num(m.rss_delta_bytes),
        peak: Math.max(num(mem.measured_build_peak_bytes) ?? 0, num(mem.measured_load_peak_bytes) ?? 0) || null,
        buildPeak: num(mem.measured_build_peak_bytes),
        loadPeak: num(mem.measured_load_peak_bytes),
        fingerprint: str(m.fingerprint),
        bars,
        readyAt: marks.length && FINAL.has(marks[marks.length - 1].state) ? marks[marks.length - 1].at : null,
      };
    });
  const stages = arr(z.stages)
    .map(obj)
    .filter((s) => num(s.started_ms) !== null && s.started_ms >= 0)
    .map((s) => ({
      stage: num(s.stage) ?? 0,
      from: base + s.started_ms,
      to: base + s.started_ms + Math.max(0, num(s.duration_ms) ?? 0),
      peak: num(s.peak_rss_bytes),
      heapAfter: num(s.heap_after_bytes),
      rssAfter: num(s.rss_after_bytes),
      modules: arr(s.modules).map(str),
    }));
  // A finished start-up ends where its last step did (a 30 ms start-up is not
  // drawn on an axis as long as the process has lived); a running one, now.
  const settled = [...modules.flatMap((m) => [...m.bars.map((b) => b.to), m.readyAt ?? 0]), ...stages.map((s) => s.to),
    listening ?? 0, base];
  const axisEnd = Math.max(z.finished === true ? Math.max(...settled) * 1.05 : Math.max(end, ...settled), 1);
  return {
    listening,
    loaderStarted: base,
    end: axisEnd,
    finished: z.finished === true,
    ready: z.ready === true,
    peak: num(z.startup_peak_rss_bytes),
    mode: str(z.mode),
    modules,
    stages,
  };
}

export const ROUTE_COLUMNS = ['route', 'requests', 'allocated', 'perRequest', 'held'];

// Routes by bytes from /debug/memory/routes (by_allocated and by_held joined
// by route), sorted by `key` ("allocated", "held", ...), descending unless asc.
export function routeRows(routes, key = 'allocated', asc = false) {
  const r = obj(routes);
  const byRoute = new Map();
  for (const row of [...arr(r.by_allocated), ...arr(r.by_held)].map(obj)) {
    const route = str(row.route);
    if (!route || byRoute.has(route)) continue;
    const requests = num(row.requests) ?? 0;
    const allocated = num(row.allocated_bytes) ?? 0;
    byRoute.set(route, {
      route,
      requests,
      allocated,
      perRequest: num(row.allocated_per_request) ?? (requests ? Math.floor(allocated / requests) : 0),
      held: num(row.held_bytes) ?? 0,
    });
  }
  const rows = [...byRoute.values()];
  if (!ROUTE_COLUMNS.includes(key)) key = 'allocated';
  const dir = asc ? 1 : -1;
  rows.sort((a, b) => {
    const x = a[key];
    const y = b[key];
    if (x === y) return a.route < b.route ? -1 : 1;
    return (x < y ? -1 : 1) * dir;
  });
  return { available: r.available === true, rows };
}

// The fleet from /debug/coord.
export function fleetView(coord) {
  const c = obj(coord);
  const lease = (l) => ({
    key: str(l.key),
    fence: num(l.fence),
    backend: str(l.backend),
    ttlMs: num(l.ttl_ms),
    heldMs: num(l.held_ms),
    held: l.held === true,
    extensions: num(l.extensions) ?? 0,
  });
  return {
    backend: str(c.backend) || 'unknown',
    master: str(c.master),
    redisUrl: str(c.redis_url),
    connection: str(c.connection_state),
    reconnects: num(c.reconnects) ?? 0,
    lostLeases: num(c.lost_leases) ?? 0,
    totals: Object.entries(obj(c.fleet_once_totals))
      .filter(([, v]) => num(v) !== null && v > 0)
      .map(([k, v]) => ({ outcome: k, count: v })),
    held: arr(c.leases_held).map(obj).map(lease),
    recentLeases: arr(c.leases_recent).map(obj).map(lease),
    outcomes: arr(c.fleet_once_recent)
      .map(obj)
      .map((o) => ({
        name: str(o.name),
        outcome: str(o.outcome),
        at: num(o.at_unix_ms),
        durationMs: num(o.duration_ms),
        error: str(o.error),
      })),
    artifacts: arr(c.artifacts)
      .map(obj)
      .map((a) => ({
        module: str(a.module),
        name: str(a.name),
        fingerprint: str(a.fingerprint),
        inputs: str(a.inputs),
        serving: a.serving === true,
        reachable: a.reachable !== false,
        published: a.published === true,
        builder: str(a.builder),
        size: num(a.size_bytes),
        buildPeak: Math.max(num(a.build_peak_bytes) ?? 0, num(a.measured_build_peak_bytes) ?? 0) || null,
        loadPeak: num(a.measured_load_peak_bytes) || null,
      })),
  };
}
