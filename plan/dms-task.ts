/**
 * What the aws runner asks of AWS DMS, derived from the plan alone (pure, no AWS SDK): the
 * identifiers of the resources it creates or adopts, the task's table mapping and settings, and
 * how DMS's task and table states read in dbferry's words.
 */
import type { Plan, TlsOptions } from './plan-schema';
import { parseTablePattern, selectsByDefault, type DmsSelectionRule, type NamePattern } from './table-selection';

/** The tag every resource dbferry creates carries: its migration's name. Cleanup deletes only those. */
export const CREATED_BY_TAG = 'dbferry:migration';

export interface DmsNames {
  task: string;
  sourceEndpoint: string;
  targetEndpoint: string;
  subscription: string;
  sourceCertificate: string;
  targetCertificate: string;
}

/**
 * DMS identifiers start with a letter, hold letters, digits and single hyphens, and do not end
 * with a hyphen. A plan name is `[a-z0-9][a-z0-9-]*`: prefixed and with hyphen runs folded, it is one.
 */
export function dmsNames(plan: Pick<Plan, 'name'>): DmsNames {
  const base = `dbferry-${plan.name}`.replace(/-+/g, '-').replace(/-$/, '');
  return {
    task: `${base}-task`,
    sourceEndpoint: `${base}-source`,
    targetEndpoint: `${base}-target`,
    subscription: `${base}-events`,
    sourceCertificate: `${base}-source-ca`,
    targetCertificate: `${base}-target-ca`,
  };
}

export type DmsMigrationType = 'full-load' | 'full-load-and-cdc' | 'cdc';

export function dmsMigrationType(mode: Plan['mode']): DmsMigrationType {
  if (mode === 'full-load' || mode === 'full-load-and-cdc' || mode === 'cdc') return mode;
  throw new Error(`mode ${mode} has no DMS task`);
}

/** DMS's SslMode for an endpoint's `tls.mode`. */
export function dmsSslMode(tls: TlsOptions | undefined): 'none' | 'require' | 'verify-ca' | 'verify-full' {
  if (!tls || tls.mode === 'disable') return 'none';
  return tls.mode;
}

/**
 * The task's table mapping: the plan's DMS document as it was given (dbferry created the target
 * tables from the same rules, so DMS writes into what it expects), or selection rules written
 * from `include`/`exclude` patterns (for a MySQL source by default: its URL's database).
 */
export function dmsTableMapping(tables: Plan['tables'], mysqlDatabase?: string): string {
  if (tables.mappings) return JSON.stringify(tables.mappings);
  // A MySQL source's default selection is the database its URL names, as dbferry's own.
  if (mysqlDatabase !== undefined && selectsByDefault(tables)) tables = { ...tables, include: [`"${mysqlDatabase.replace(/"/g, '""')}".%`] };
  // In a DMS locator `%` is any run, `_` any one character and `[…]` a set: dbferry's `_`
  // and `[` are literal, so they go in brackets.
  const literal = (t: string) => t.replace(/[_[]/g, (c) => `[${c}]`);
  const locatorPart = (p: NamePattern) => ('exact' in p ? literal(p.exact) : p.glob.split('%').map(literal).join('%'));
  const rule = (pattern: string, action: 'include' | 'exclude', n: number): DmsSelectionRule => {
    const parsed = parseTablePattern(pattern);
    if (!parsed.ok) throw new Error(`tables pattern ${pattern}: ${parsed.message}`);
    return {
      'rule-type': 'selection',
      'rule-id': String(n),
      'rule-name': `dbferry-${action}-${n}`,
      'rule-action': action,
      'object-locator': { 'schema-name': locatorPart(parsed.pattern.schema), 'table-name': locatorPart(parsed.pattern.table) },
    };
  };
  let n = 0;
  const rules = [...tables.include.map((p) => rule(p, 'include', ++n)), ...tables.exclude.map((p) => rule(p, 'exclude', ++n))];
  return JSON.stringify({ rules });
}

/**
 * Task settings. dbferry created the tables (DO_NOTHING: DMS neither drops nor truncates them)
 * and builds keys and indexes after the load, so a task with CDC stops once the full load is
 * done, before it applies the changes it cached meanwhile (dbferry resumes it after building
 * them). Full LOB mode: no value is cut short whatever its size (limited mode truncates
 * silently above LobMaxSize, which validation would only find afterwards).
 */
export function dmsTaskSettings(mode: Plan['mode']): string {
  return JSON.stringify({
    TargetMetadata: { SupportLobs: true, FullLobMode: true, LobChunkSize: 64, LimitedSizeLobMode: false, LobMaxSize: 0 },
    FullLoadSettings: {
      TargetTablePrepMode: 'DO_NOTHING',
      CreatePkAfterFullLoad: false,
      StopTaskCachedChangesNotApplied: mode === 'full-load-and-cdc',
      StopTaskCachedChangesApplied: false,
    },
    Logging: { EnableLogging: true },
    // A row or change DMS cannot write suspends its table (Table error) instead of being logged
    // and skipped (DMS's default for apply errors): dbferry pauses for a person rather than end
    // with rows missing, and a retry reloads that table.
    ErrorBehavior: {
      DataErrorPolicy: 'SUSPEND_TABLE',
      TableErrorPolicy: 'SUSPEND_TABLE',
      ApplyErrorDeletePolicy: 'SUSPEND_TABLE',
      ApplyErrorInsertPolicy: 'SUSPEND_TABLE',
      ApplyErrorUpdatePolicy: 'SUSPEND_TABLE',
    },
  });
}

/** The LOB handling the settings above choose, for the report. */
export const DMS_LOB_MODE = 'full LOB mode (no value truncated)';

/** Where a task stands, in the words the runner acts on. */
export type DmsTaskPhase = 'starting' | 'running' | 'loaded-changes-held' | 'loaded' | 'stopped' | 'failed' | 'other';

export function dmsTaskPhase(status: string | undefined, stopReason: string | undefined): DmsTaskPhase {
  const reason = (stopReason ?? '').toUpperCase().replace(/\s+/g, '_');
  switch (status) {
    case 'creating':
    case 'ready':
    case 'starting':
    case 'modifying':
    case 'testing':
      return 'starting';
    case 'running':
      return 'running';
    case 'failed':
      return 'failed';
    case 'stopped':
      // DMS's words (ReplicationTask.StopReason): "Stop Reason STOPPED_AFTER_FULL_LOAD" is the
      // stop StopTaskCachedChangesNotApplied asks for; after the cached events it is the same
      // for dbferry (CDC resumes from there).
      if (reason.includes('STOPPED_AFTER_FULL_LOAD') || reason.includes('STOPPED_AFTER_CACHED_EVENTS')) return 'loaded-changes-held';
      if (reason.includes('FULL_LOAD_ONLY_FINISHED')) return 'loaded';
      if (/FATAL_ERROR|RECOVERABLE_ERROR|LOW_MEMORY|LOW_DISK|LICENSE_LIMITS/.test(reason)) return 'failed';
      return 'stopped';
    default:
      return 'other';
  }
}

/** A table state of DescribeTableStatistics in dbferry's words. */
export function dmsTableDone(state: string | undefined): 'done' | 'error' | 'loading' {
  const s = (state ?? '').toLowerCase();
  if (s === 'table completed') return 'done';
  if (s === 'table error' || s === 'table cancelled') return 'error';
  return 'loading';
}
