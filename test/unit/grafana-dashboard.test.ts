// The sample Grafana dashboard (deploy/grafana/dbferry-dashboard.json), checked without a
// Grafana: the JSON parses; every panel and query reads the data source the `datasource`
// variable picks; the dbferry metrics it queries are exactly those plan/metric-names.ts names
// (what the activities and the workflow emit), each one on some panel; the SDK metrics it
// queries are ones the Temporal SDK exports; and its dbferry queries use only labels dbferry
// sets, filtered by the `migration` variable.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { METRICS } from '../../plan/metric-names';

const repoRoot = resolve(__dirname, '../..');
const DASHBOARD = 'deploy/grafana/dbferry-dashboard.json';

/**
 * The Temporal SDK's own worker metrics (Core's Prometheus exporter, prefix `temporal_`; its
 * counters have no `_total`, histograms are in milliseconds) the dashboard may read. They are
 * the SDK's, not dbferry's: plan/metric-names.ts does not name them.
 */
const SDK_METRICS = new Set([
  'temporal_activity_execution_failed',
  'temporal_activity_schedule_to_start_latency_bucket',
  'temporal_worker_task_slots_available',
  'temporal_workflow_task_execution_failed',
  'temporal_sticky_cache_size',
]);

/** The labels dbferry's metrics carry (activities/telemetry.ts, workflows/operator-gate.ts, worker/activity-telemetry.ts). */
const DBFERRY_LABELS = new Set(['migration', 'table', 'kind', 'result', 'step']);

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const asObj = (v: unknown): Obj => (isObj(v) ? v : {});
const asArr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
const asStr = (v: unknown): string => (typeof v === 'string' ? v : '');

const text = readFileSync(join(repoRoot, DASHBOARD), 'utf8');
const dashboard = asObj(JSON.parse(text));

/** Every panel, the panels of a collapsed row too. */
function allPanels(panels: unknown[]): Obj[] {
  return panels.filter(isObj).flatMap((p) => [p, ...allPanels(asArr(p.panels))]);
}
const PANELS = allPanels(asArr(dashboard.panels));
const QUERY_PANELS = PANELS.filter((p) => p.type !== 'row');
const panelName = (p: Obj) => `panel ${String(p.id)} "${asStr(p.title)}"`;

const VARIABLES = asArr(asObj(dashboard.templating).list).filter(isObj);
const variable = (name: string) => VARIABLES.find((v) => v.name === name);
/** A variable's query: a string, or the Prometheus editor's `{ query }`. */
const variableQuery = (v: Obj) => (typeof v.query === 'string' ? v.query : asStr(asObj(v.query).query));

interface Query {
  where: string;
  expr: string;
  legend: string;
}
const PANEL_QUERIES: Query[] = QUERY_PANELS.flatMap((p) =>
  asArr(p.targets)
    .filter(isObj)
    .map((t) => ({ where: `${panelName(p)} query ${asStr(t.refId)}`, expr: asStr(t.expr), legend: asStr(t.legendFormat) })),
);
const VARIABLE_QUERIES: Query[] = VARIABLES.filter((v) => v.type === 'query').map((v) => ({ where: `variable ${asStr(v.name)}`, expr: variableQuery(v), legend: '' }));
const QUERIES = [...PANEL_QUERIES, ...VARIABLE_QUERIES];

const metricNames = (expr: string, prefix: 'dbferry_' | 'temporal_') => [...expr.matchAll(new RegExp(`\\b${prefix}[A-Za-z0-9_:]*`, 'g'))].map((m) => m[0]);

/** The label names a PromQL expression (and its legend) mentions: matchers, by/without/on/ignoring/group_*, label_values, {{legend}}. */
function labelNames(q: Query): string[] {
  const expr = q.expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  const names: string[] = [];
  for (const m of expr.matchAll(/\{([^}]*)\}/g)) {
    for (const l of m[1].matchAll(/([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)/g)) names.push(l[1]);
  }
  for (const m of expr.matchAll(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g)) {
    names.push(...m[1].split(',').map((s) => s.trim()).filter(Boolean));
  }
  for (const m of expr.matchAll(/\blabel_values\s*\([^,)]*,\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)/g)) names.push(m[1]);
  for (const m of q.legend.matchAll(/\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g)) names.push(m[1]);
  return names;
}

/** The thresholds of the panels that query `metric`. */
const thresholdsOf = (metric: string) =>
  QUERY_PANELS.filter((p) => asArr(p.targets).some((t) => metricNames(asStr(asObj(t).expr), 'dbferry_').includes(metric))).map((p) =>
    asArr(asObj(asObj(asObj(p.fieldConfig).defaults).thresholds).steps).map((s) => asObj(s).value),
  );

describe(`the Grafana dashboard (${DASHBOARD})`, () => {
  it('is a Grafana JSON model with a Prometheus data source variable and a multi-value migration variable', () => {
    expect(typeof dashboard.title).toBe('string');
    expect(typeof dashboard.uid).toBe('string');
    expect(dashboard.schemaVersion).toEqual(expect.any(Number));
    expect(dashboard.schemaVersion as number).toBeGreaterThanOrEqual(36);
    expect(variable('datasource')).toMatchObject({ type: 'datasource', query: 'prometheus' });
    const migration = variable('migration');
    expect(migration).toMatchObject({ type: 'query', multi: true, includeAll: true, datasource: { type: 'prometheus', uid: '${datasource}' } });
    expect(variableQuery(migration ?? {})).toBe(`label_values(${METRICS.rowsLoaded}, migration)`);
    expect(QUERY_PANELS.length).toBeGreaterThan(0);
    expect(new Set(PANELS.map((p) => p.id)).size).toBe(PANELS.length);
  });

  it('reads the data source the variable picks, on every panel and every query', () => {
    const wrong: string[] = [];
    for (const p of PANELS) {
      if (!isObj(p.datasource) || p.datasource.uid !== '${datasource}' || p.datasource.type !== 'prometheus') wrong.push(`${panelName(p)}: ${JSON.stringify(p.datasource)}`);
      for (const t of asArr(p.targets).filter(isObj)) {
        if (!isObj(t.datasource) || t.datasource.uid !== '${datasource}') wrong.push(`${panelName(p)} query ${asStr(t.refId)}: ${JSON.stringify(t.datasource)}`);
      }
    }
    expect(wrong).toEqual([]);
    const empty = QUERY_PANELS.filter((p) => asArr(p.targets).length === 0 || asArr(p.targets).some((t) => !asStr(asObj(t).expr).trim()));
    expect(empty.map(panelName)).toEqual([]);
  });

  it('queries exactly the dbferry metrics plan/metric-names.ts names, each on some panel', () => {
    const known = new Set<string>(Object.values(METRICS));
    const unknown = QUERIES.flatMap((q) => metricNames(q.expr, 'dbferry_').filter((n) => !known.has(n)).map((n) => `${q.where}: ${n}`));
    expect(unknown).toEqual([]);
    const onPanels = new Set(PANEL_QUERIES.flatMap((q) => metricNames(q.expr, 'dbferry_')));
    expect(Object.values(METRICS).filter((n) => !onPanels.has(n))).toEqual([]);
  });

  it('queries only SDK metrics the Temporal SDK exports', () => {
    const unknown = QUERIES.flatMap((q) => metricNames(q.expr, 'temporal_').filter((n) => !SDK_METRICS.has(n)).map((n) => `${q.where}: ${n}`));
    expect(unknown).toEqual([]);
  });

  it('uses only the labels dbferry sets in its dbferry queries, and filters each by the migration variable', () => {
    const dbferryQueries = QUERIES.filter((q) => metricNames(q.expr, 'dbferry_').length > 0);
    const badLabels = dbferryQueries.flatMap((q) => labelNames(q).filter((l) => !DBFERRY_LABELS.has(l)).map((l) => `${q.where}: ${l}`));
    expect(badLabels).toEqual([]);
    // Every selector of a dbferry metric on a panel follows the migration picker.
    const unfiltered = PANEL_QUERIES.flatMap((q) =>
      [...q.expr.matchAll(/\b(dbferry_[A-Za-z0-9_:]*)(\{[^}]*\})?/g)].filter((m) => !(m[2] ?? '').includes('migration=~"$migration"')).map((m) => `${q.where}: ${m[0]}`),
    );
    expect(unfiltered).toEqual([]);
  });

  it('draws the default alert thresholds: CDC lag 60 s, retained source log 10 GiB', () => {
    // The defaults of the plan's alerts.lagSeconds and alerts.slotWalGb (activities/apply/cdc-alarms.ts).
    expect(thresholdsOf(METRICS.cdcLagSeconds)).toEqual([expect.arrayContaining([60])]);
    expect(thresholdsOf(METRICS.sourceRetainedBytes)).toEqual([expect.arrayContaining([10 * 1024 ** 3])]);
  });
});
