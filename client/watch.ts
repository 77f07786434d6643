import { MultiBar, Presets, type SingleBar } from 'cli-progress';
import type { Client } from '@temporalio/client';
import type { CdcProgress, ManagedLoadProgress, MigrationStatus } from '../plan/migration-types';
import { Exit, type ExitCode } from './exit-codes';
import { liveProgress, requireMigration, statusFromDescription, withLiveCdc } from './migrations';
import { cdcProgress } from './render';

/** A loader's heartbeat (activities/postgres/load-task.ts). */
interface LoaderBeat {
  activity: 'loadTask';
  task: number;
  current?: string;
  table?: string;
  unitBytes?: number;
  unitEstBytes?: number;
  unitStartedAt?: string;
  /** A loaded table whose keys and indexes its loader builds while others copy. */
  building?: string;
}

/** One frame of `dbferry watch`: what `--json` prints, one line per tick. */
export interface WatchFrame {
  at: string;
  phase: MigrationStatus['phase'];
  tables: { total: number; loaded: number };
  loading: Array<{ unit: string; bytes: number; estimatedBytes: number; percent: number; bytesPerSecond: number; etaSeconds: number | null }>;
  /** Loaded tables whose keys and indexes are being built while others still copy. */
  building: string[];
  /** A full load a managed service runs (AWS DMS): its percent and the tables it is loading. */
  managed?: { percent?: number; loading: Array<{ table: string; rows: number }> };
  cdc?: Pick<CdcProgress, 'appliedPosition' | 'sourcePosition' | 'lagBytes' | 'lagSeconds' | 'caughtUp' | 'changes'> & { changesPerSecond: number };
  failure?: MigrationStatus['failure'];
}

const DONE: Partial<Record<MigrationStatus['phase'], ExitCode>> = { completed: Exit.Ok, failed: Exit.Failed, aborted: Exit.Aborted };

/**
 * `dbferry watch`: live progress from the memo and the running activities' heartbeats (so it
 * works with no worker up): a bar per table or chunk being loaded, with throughput and ETA, and
 * CDC lag and apply rate. Ends when the migration does (its exit code says how).
 */
export async function watchMigration(client: Client, name: string, opts: { json?: boolean; intervalMs?: number }): Promise<ExitCode> {
  const every = opts.intervalMs ?? 1000;
  const bars = !opts.json && process.stderr.isTTY ? new MultiBar({ format: ' {bar} {percentage}% | {unit} | {rate} | ETA {eta_formatted}', hideCursor: true, clearOnComplete: false }, Presets.shades_classic) : undefined;
  const shown = new Map<string, SingleBar>();
  let lastChanges: { n: number; at: number } | undefined;
  try {
    for (;;) {
      const d = await requireMigration(client, name);
      const status = statusFromDescription(d);
      const live = await liveProgress(client, d);
      const cdc = cdcProgress(live);
      const now = Date.now();
      const frame = toFrame(status ? withLiveCdc(status, cdc) : undefined, live, cdc, lastChanges, now);
      if (cdc) lastChanges = { n: cdc.changes, at: now };
      if (opts.json) console.log(JSON.stringify(frame));
      else if (bars) draw(bars, shown, frame);
      else console.error(textLine(frame));
      const ended = d.status.name !== 'RUNNING' ? (DONE[frame.phase] ?? Exit.Failed) : undefined;
      if (ended !== undefined) {
        bars?.stop();
        if (!opts.json) console.error(`migration ${name}: ${frame.phase}`);
        return ended;
      }
      await new Promise((r) => setTimeout(r, every));
    }
  } finally {
    bars?.stop();
  }
}

export function toFrame(status: MigrationStatus | undefined, live: unknown[], cdc: CdcProgress | undefined, last: { n: number; at: number } | undefined, now: number): WatchFrame {
  const loading = live
    .filter((x): x is LoaderBeat => (x as { activity?: string }).activity === 'loadTask' && !!(x as LoaderBeat).current)
    .map((b) => {
      const bytes = b.unitBytes ?? 0;
      const est = Math.max(b.unitEstBytes ?? 0, bytes, 1);
      const secs = b.unitStartedAt ? Math.max(0.001, (now - Date.parse(b.unitStartedAt)) / 1000) : 0;
      const rate = secs > 0 ? bytes / secs : 0;
      return {
        unit: b.current!,
        bytes,
        estimatedBytes: est,
        percent: Math.min(100, Math.round((bytes / est) * 100)),
        bytesPerSecond: Math.round(rate),
        etaSeconds: rate > 0 ? Math.round((est - bytes) / rate) : null,
      };
    });
  const building = live.filter((x): x is LoaderBeat => (x as { activity?: string }).activity === 'loadTask' && !!(x as LoaderBeat).building).map((b) => b.building!);
  const named = status?.tables.filter((t) => t.fullLoadRows !== undefined).length ?? 0;
  // A status from a version before loaded tables were counted names at most 200 tables: the
  // named ones loaded, or the validated count when larger (validated tables were loaded), is
  // the best lower bound it gives.
  const tables = status?.totals
    ? { total: status.totals.tables, loaded: status.totals.loaded ?? Math.max(named, status.totals.equal + status.totals.different) }
    : { total: status?.tables.length ?? 0, loaded: named };
  const frame: WatchFrame = { at: new Date(now).toISOString(), phase: status?.phase ?? 'preflight', tables, loading, building };
  const managed = live.find((x): x is ManagedLoadProgress => (x as { activity?: string }).activity === 'managedLoad' && Array.isArray((x as ManagedLoadProgress).loading));
  if (managed) {
    frame.tables = { total: managed.tablesTotal, loaded: managed.tablesLoaded };
    frame.managed = { ...(managed.percent !== undefined ? { percent: managed.percent } : {}), loading: managed.loading };
  }
  if (cdc) {
    const rate = last && now > last.at ? Math.max(0, ((cdc.changes - last.n) * 1000) / (now - last.at)) : 0;
    frame.cdc = {
      appliedPosition: cdc.appliedPosition,
      sourcePosition: cdc.sourcePosition,
      lagBytes: cdc.lagBytes,
      lagSeconds: cdc.lagSeconds,
      caughtUp: cdc.caughtUp,
      changes: cdc.changes,
      changesPerSecond: Math.round(rate),
    };
  }
  if (status?.failure && status.phase === 'awaiting-operator') frame.failure = status.failure;
  return frame;
}

function mb(n: number): string {
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

function textLine(f: WatchFrame): string {
  const parts = [`${f.at.slice(11, 19)} ${f.phase}`, `tables loaded ${f.tables.loaded}/${f.tables.total}`];
  for (const l of f.loading) parts.push(`${l.unit} ${l.percent}% ${mb(l.bytes)} ${mb(l.bytesPerSecond)}/s${l.etaSeconds !== null ? ` ETA ${l.etaSeconds}s` : ''}`);
  if (f.building.length > 0) parts.push(`building keys and indexes of ${f.building.join(', ')}`);
  if (f.managed) parts.push(`DMS ${f.managed.percent ?? 0}%${f.managed.loading.map((l) => `, ${l.table} ${l.rows} rows`).join('')}`);
  if (f.cdc) parts.push(`CDC lag ${mb(Number(f.cdc.lagBytes))} ${f.cdc.lagSeconds.toFixed(1)} s, ${f.cdc.changesPerSecond} changes/s, ${f.cdc.caughtUp ? 'caught up' : 'catching up'}`);
  if (f.failure) parts.push(`WAITING FOR AN OPERATOR: ${f.failure.step} (${f.failure.type}): ${f.failure.message}`);
  return parts.join(' | ');
}

function draw(bars: MultiBar, shown: Map<string, SingleBar>, f: WatchFrame): void {
  const want = new Map<string, { value: number; total: number; payload: Record<string, string> }>();
  want.set('tables', { value: f.tables.loaded, total: Math.max(1, f.tables.total), payload: { unit: `${f.phase}: tables loaded ${f.tables.loaded}/${f.tables.total}`, rate: '' } });
  for (const l of f.loading) {
    want.set(l.unit, { value: l.bytes, total: l.estimatedBytes, payload: { unit: `${l.unit} ${mb(l.bytes)}`, rate: `${mb(l.bytesPerSecond)}/s` } });
  }
  for (const b of f.building) want.set(`build ${b}`, { value: 0, total: 1, payload: { unit: `${b}: building keys and indexes`, rate: '' } });
  if (f.managed) {
    want.set('managed', { value: f.managed.percent ?? 0, total: 100, payload: { unit: `AWS DMS full load${f.managed.loading.map((l) => `, ${l.table} ${l.rows} rows`).join('')}`, rate: '' } });
  }
  if (f.cdc) {
    const lag = Number(f.cdc.lagBytes);
    want.set('cdc', {
      value: f.cdc.caughtUp ? 1 : 0,
      total: 1,
      payload: { unit: `CDC lag ${mb(lag)}, ${f.cdc.lagSeconds.toFixed(1)} s${f.cdc.caughtUp ? ' (caught up)' : ''}`, rate: `${f.cdc.changesPerSecond} changes/s` },
    });
  }
  for (const [k, bar] of shown) {
    if (!want.has(k)) {
      bars.remove(bar);
      shown.delete(k);
    }
  }
  for (const [k, v] of want) {
    const bar = shown.get(k);
    if (bar) {
      bar.setTotal(v.total);
      bar.update(v.value, v.payload);
    } else shown.set(k, bars.create(v.total, v.value, v.payload));
  }
  if (f.failure) bars.log(`WAITING FOR AN OPERATOR: ${f.failure.step} (${f.failure.type}): ${f.failure.message}\n`);
}
