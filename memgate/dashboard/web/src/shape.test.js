import { describe, expect, it } from 'vitest';
import { formatBytes, formatMs, memoryChart, waterfall, routeRows, fleetView } from './shape.js';

const MiB = 1 << 20;

describe('formatBytes and formatMs', () => {
  it('uses binary units with one decimal below 100', () => {
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1536)).toBe('1.5 KiB');
    expect(formatBytes(130 * MiB)).toBe('130 MiB');
    expect(formatBytes(-2 * MiB)).toBe('-2.0 MiB');
    expect(formatBytes(null)).toBe('–');
    expect(formatMs(45.4)).toBe('45 ms');
    expect(formatMs(1234)).toBe('1.23 s');
    expect(formatMs(-1)).toBe('–');
  });
});

describe('memoryChart', () => {
  const history = {
    samples: [
      { ts_ms: 1000, heap: 10 * MiB, resident: 12 * MiB, rss: 20 * MiB, cgroup_usage: null, actions: [] },
      { ts_ms: 2000, heap: 80 * MiB, resident: 90 * MiB, rss: 100 * MiB, cgroup_usage: null, actions: ['purge', 'alert'] },
      { ts_ms: 'bad', heap: 1 },
    ],
    events: [{ ts_ms: 2000, action: 'alert', in_force: true, trigger: 'heap_alert' }],
    snapshots: [{ ts_ms: 2000, instance: 'i-1', trigger: 'heap_alert', memory: { allocator: { allocated: 80 * MiB } }, heap_profile: null }],
  };
  const memory = {
    limits: { heap_alert_threshold: 64 * MiB, heap_shed_threshold: 3584 * MiB },
    guard: { triggers: [{ name: 'heap_alert', on: 64 * MiB }, { name: 'cgroup_pressure', on: 0 }] },
    cgroup: { limit: null },
  };

  it('turns samples into columns in seconds and drops malformed ones', () => {
    const c = memoryChart(history, memory);
    expect(c.x).toEqual([1, 2]);
    expect(c.heap).toEqual([10 * MiB, 80 * MiB]);
    expect(c.rss).toEqual([20 * MiB, 100 * MiB]);
    expect(c.cgroup).toBeNull();
    expect(c.latest).toEqual({ heap: 80 * MiB, rss: 100 * MiB, cgroup: null, actions: ['purge', 'alert'] });
  });

  it('draws the alert line and lists a threshold far above the data instead of flattening the chart', () => {
    const c = memoryChart(history, memory);
    const byKey = Object.fromEntries(c.thresholds.map((t) => [t.key, t]));
    expect(Object.keys(byKey)).toEqual(['alert', 'shed']);  // no container: no pressure or limit lines
    expect(byKey.alert.onChart).toBe(true);
    expect(byKey.shed.onChart).toBe(false);
    expect(c.yMax).toBeCloseTo(100 * MiB * 1.15);
  });

  it('draws the container limit and the cgroup pressure line when there is a container', () => {
    const c = memoryChart(
      { samples: [{ ts_ms: 1000, heap: MiB, rss: 2 * MiB, cgroup_usage: 3 * MiB }] },
      { cgroup: { limit: 4 * MiB }, guard: { triggers: [{ name: 'cgroup_pressure', on: 3.6 * MiB }, { name: 'heap_alert', on: 2 * MiB }] } },
    );
    expect(c.cgroup).toEqual([3 * MiB]);
    expect(c.thresholds.map((t) => t.key)).toEqual(['alert', 'pressure', 'limit']);
    expect(c.thresholds.every((t) => t.onChart)).toBe(true);
    expect(c.yMax).toBeGreaterThanOrEqual(4 * MiB);
  });

  it('marks each alert with its snapshot and each action change', () => {
    const c = memoryChart(history, memory);
    expect(c.alerts).toHaveLength(1);
    expect(c.alerts[0]).toMatchObject({ t: 2, trigger: 'heap_alert', heap: 80 * MiB, heapProfile: null, id: 'alert-2000-i-1' });
    expect(c.alerts[0].snapshot).toBe(history.snapshots[0]);
    expect(c.events).toEqual([{ t: 2, action: 'alert', inForce: true, trigger: 'heap_alert' }]);
  });

  it('leaves out the usage of a cgroup without a limit (no container: others use it too)', () => {
    const c = memoryChart({ samples: [{ ts_ms: 1000, heap: MiB, rss: 2 * MiB, cgroup_usage: 2048 * MiB }] }, { cgroup: { limit: null } });
    expect(c.cgroup).toBeNull();
    expect(c.latest.cgroup).toBeNull();
    expect(c.yMax).toBeCloseTo(2 * MiB * 1.15);
  });

  it('survives answers of the wrong shape', () => {
    const c = memoryChart(null, 'nonsense');
    expect(c.x).toEqual([]);
    expect(c.thresholds).toEqual([]);
    expect(c.latest).toBeNull();
  });
});

describe('waterfall', () => {
  const startupz = {
    since_exec_ms: { listening: 12, loader_started: 20, now: 500 },
    elapsed_ms: 480,
    finished: true,
    ready: true,
    startup_peak_rss_bytes: 50 * MiB,
    stages: [{ stage: 1, modules: ['kb'], started_ms: 0, duration_ms: 300, peak_rss_bytes: 40 * MiB }],
    modules: [
      {
        name: 'kb', stage: 1, state: 'ready', outcome: 'built', built_by: 'i-1', duration_ms: 290,
        heap_delta_bytes: 5 * MiB, rss_delta_bytes: 7 * MiB,
        memory: { measured_build_peak_bytes: 30 * MiB, measured_load_peak_bytes: 10 * MiB },
        phases: [{ state: 'building', at_ms: 10 }, { state: 'loading_artifact', at_ms: 200 }, { state: 'ready', at_ms: 300 }],
      },
      { name: 'coach', stage: 2, state: 'skipped(flag)', reason: 'ENABLE_AI_ROUTES=false', phases: [] },
    ],
  };

  it('places every phase on the time axis from exec', () => {
    const w = waterfall(startupz);
    expect(w.listening).toBe(12);
    const kb = w.modules[0];
    expect(kb.bars).toEqual([
      { state: 'pending', from: 20, to: 30 },
      { state: 'building', from: 30, to: 220 },
      { state: 'loading_artifact', from: 220, to: 320 },
    ]);
    expect(kb.readyAt).toBe(320);
    expect(kb.peak).toBe(30 * MiB);
    expect(kb.outcome).toBe('built');
    expect(w.stages).toEqual([expect.objectContaining({ stage: 1, from: 20, to: 320, peak: 40 * MiB })]);
    expect(w.end).toBeCloseTo(320 * 1.05);  // finished: the axis ends with the last step, not now
  });

  it('says why a module was skipped and draws no bar for it', () => {
    const coach = waterfall(startupz).modules[1];
    expect(coach.bars).toEqual([]);
    expect(coach.outcome).toBe('skipped(flag): ENABLE_AI_ROUTES=false');
  });

  it('draws a step still running up to now', () => {
    const w = waterfall({ since_exec_ms: { loader_started: 0 }, elapsed_ms: 100, modules: [{ name: 'kb', state: 'building', phases: [{ state: 'building', at_ms: 40 }] }] });
    expect(w.modules[0].bars).toEqual([{ state: 'pending', from: 0, to: 40 }, { state: 'building', from: 40, to: 100 }]);
    expect(w.modules[0].readyAt).toBeNull();
    expect(w.end).toBe(100);
  });
});

describe('routeRows', () => {
  const routes = {
    available: true,
    by_allocated: [
      { route: '/test/alloc', requests: 2, allocated_bytes: 200, allocated_per_request: 100, held_bytes: 50 },
      { route: '/healthz', requests: 10, allocated_bytes: 20, allocated_per_request: 2, held_bytes: 0 },
    ],
    by_held: [
      { route: '/test/alloc', requests: 2, allocated_bytes: 200, allocated_per_request: 100, held_bytes: 50 },
      { route: '/api/kb/search', requests: 1, allocated_bytes: 5, held_bytes: 70 },
    ],
  };
  it('joins both lists by route and sorts by the chosen column', () => {
    expect(routeRows(routes).rows.map((r) => r.route)).toEqual(['/test/alloc', '/healthz', '/api/kb/search']);
    expect(routeRows(routes, 'held').rows.map((r) => r.route)).toEqual(['/api/kb/search', '/test/alloc', '/healthz']);
    expect(routeRows(routes, 'requests', true).rows.map((r) => r.requests)).toEqual([1, 2, 10]);
    expect(routeRows(routes, 'route', true).rows[0].route).toBe('/api/kb/search');
    expect(routeRows(routes).rows.find((r) => r.route === '/api/kb/search').perRequest).toBe(5);
  });
  it('falls back to allocated for an unknown column', () => {
    expect(routeRows(routes, 'nope').rows[0].route).toBe('/test/alloc');
  });
});

describe('fleetView', () => {
  it('keeps what the page shows and only the outcomes that happened', () => {
    const f = fleetView({
      backend: 'redis', master: '127.0.0.1:6390', connection_state: 'connected',
      fleet_once_totals: { built: 1, loaded: 0, failed: 0 },
      leases_held: [],
      leases_recent: [{ key: 'init:mcp-kb@ab', fence: 3, backend: 'redis', ttl_ms: 20000, held_ms: 150, held: false }],
      fleet_once_recent: [{ name: 'init:mcp-kb@ab', outcome: 'built', at_unix_ms: 5, duration_ms: 150, error: '' }],
      artifacts: [{ module: 'kb', fingerprint: 'ab', published: true, builder: 'i-1', size_bytes: 1000, build_peak_bytes: 0, measured_build_peak_bytes: 9000, measured_load_peak_bytes: 4000, serving: true }],
    });
    expect(f.backend).toBe('redis');
    expect(f.master).toBe('127.0.0.1:6390');
    expect(f.totals).toEqual([{ outcome: 'built', count: 1 }]);
    expect(f.recentLeases[0]).toMatchObject({ key: 'init:mcp-kb@ab', fence: 3, held: false });
    expect(f.outcomes[0]).toMatchObject({ outcome: 'built', durationMs: 150 });
    expect(f.artifacts[0]).toMatchObject({ fingerprint: 'ab', size: 1000, buildPeak: 9000, loadPeak: 4000, serving: true });
  });
});
