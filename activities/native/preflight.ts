import type { ActivityInput, EndpointInfo, Finding, PreflightReport } from '../../plan/migration-types';
import type { Alert } from '../../plan/migration-types';
import type { SourceEngine } from '../engine';
import { withHeartbeat } from '../heartbeat';
import type { PgEndpoint } from '../pg/connection';
import type { TransformationNote } from '../../plan/dms-transformations';
import { targetModel } from '../../plan/target-model';
import { qualifiedKey, sourceTable, type SchemaModel } from '../../plan/schema-model';
import { createSchemaStatements, postLoadStatements } from '../target/ddl';
import { targetChecks } from '../target/preflight';
import { largerFirst, listed } from '../../plan/table-lists';

/**
 * Checks both endpoints before anything is written: connectivity, versions, privileges, what
 * would be migrated and what is in the way. Blocking findings pause the migration. The alert
 * webhook gets a check message (a dead receiver is a warning: missed alerts show in status).
 */
export async function preflight(
  input: ActivityInput & { withTargetSchema?: boolean },
  engine: SourceEngine,
  /** Undefined when the target is an RDS instance create-database will create. */
  tgt: PgEndpoint | undefined,
  alert: (plan: ActivityInput['plan'], a: Alert) => Promise<void>,
): Promise<PreflightReport> {
  const { plan } = input;
  return withHeartbeat(() => ({ step: 'preflight' }), async () => {
    const source = await engine.preflight({ cdc: plan.mode === 'full-load-and-cdc' || plan.mode === 'cdc' });
    const findings = [...source.findings];
    const mapped = targetModel(source.model, plan);
    // What the target will hold: the mapped names (the source's when the mapping does not fit).
    const targetTables = mapped.ok ? mapped.model.tables : source.model.tables;
    if (!mapped.ok) {
      for (const i of mapped.issues) findings.push({ severity: 'blocking', code: i.path.startsWith('keys') ? 'keys' : 'mappings', message: `${i.path}: ${i.message}` });
    }
    if (mapped.ok) {
      // A MySQL table without a key gets one from a define-primary-key rule: binlog row images
      // are whole rows, so CDC finds its rows by that key.
      const keyedByRule = new Map(mapped.model.tables.filter((t) => t.primaryKey).map((t) => [qualifiedKey(sourceTable(t)), t]));
      for (let i = findings.length - 1; i >= 0; i--) {
        const f = findings[i]!;
        const t = f.code === 'cdc-no-primary-key' && f.table ? keyedByRule.get(f.table) : undefined;
        if (t) findings[i] = { severity: 'info', code: 'cdc-mapped-key', table: f.table, message: `${f.table} has no primary key on the source: CDC finds its rows by the key the table mapping defines (${t.primaryKey!.columns?.join(', ')})` };
      }
    }
    for (const n of mapped.notes) {
      if (n.severity === 'warning') findings.push({ severity: 'warning', code: 'mappings', message: `rule ${n.ruleId}: ${n.message}` });
    }
    const stoppingStep = plan.mode === 'dump-restore' ? 'dump-restore' : plan.mode === 'cdc' ? undefined : 'create-tables';
    const targetInfo = tgt
      ? await targetChecks(tgt, plan.target.createDatabase, targetTables, findings, stoppingStep)
      : toBeCreated(plan, findings);
    if (plan.alerts?.webhook) {
      try {
        await alert(plan, { kind: 'check', text: `dbferry migration *${plan.name}*: preflight check; this migration's alerts arrive here`, at: new Date().toISOString() });
      } catch (err) {
        findings.push({ severity: 'warning', code: 'alert-webhook', message: `${(err as Error).message}: alerts of this migration would be missed (fix alerts.webhook, or skip this finding)` });
      }
    }
    if (tgt && Number(targetInfo.version.split('.')[0]) < Number(source.info.version.split('.')[0])) {
      findings.push({ severity: 'warning', code: 'target-older', message: `target PostgreSQL ${targetInfo.version} is older than the source's ${source.info.version}` });
    }
    const tables = targetTables.map((t) => ({ name: qualifiedKey(t), estimatedRows: t.estimatedRows, estimatedBytes: t.estimatedBytes }));
    const schema = input.withTargetSchema && mapped.ok ? targetSchemaStatements(mapped.model, mapped.notes) : undefined;
    return {
      source: source.info,
      target: targetInfo,
      findings: boundedFindings(findings),
      tables: listed(tables, largerFirst((t) => t.estimatedBytes)),
      selected: {
        tables: tables.length,
        estimatedRows: tables.reduce((n, t) => n + BigInt(t.estimatedRows), 0n).toString(),
        estimatedBytes: tables.reduce((n, t) => n + BigInt(t.estimatedBytes), 0n).toString(),
      },
      ...(schema ? shownSchema(schema) : {}),
    };
  });
}

/** Bytes of the target DDL `check` shows: a 50,000-table schema's would not fit a result (2 MB). */
const TARGET_SCHEMA_BYTES = 256 * 1024;

/** The target DDL's first statements, up to TARGET_SCHEMA_BYTES, and how many are left out. */
function shownSchema(statements: string[]): { targetSchema: string[]; targetSchemaOmitted?: number } {
  let bytes = 0;
  let n = 0;
  while (n < statements.length && bytes + Buffer.byteLength(statements[n]!) <= TARGET_SCHEMA_BYTES) bytes += Buffer.byteLength(statements[n++]!);
  return n < statements.length ? { targetSchema: statements.slice(0, n), targetSchemaOmitted: statements.length - n } : { targetSchema: statements };
}
/** Findings of one kind named one by one; more of that kind (one per table of a large schema) are counted. */
const FINDINGS_PER_CODE = 50;

/** The findings, at most FINDINGS_PER_CODE of each code, the rest of that code counted in one more finding. */
export function boundedFindings(findings: Finding[]): Finding[] {
  const seen = new Map<string, number>();
  const out: Finding[] = [];
  for (const f of findings) {
    const key = `${f.severity}:${f.code}`;
    const n = (seen.get(key) ?? 0) + 1;
    seen.set(key, n);
    if (n <= FINDINGS_PER_CODE) out.push(f);
  }
  for (const [key, n] of seen) {
    if (n <= FINDINGS_PER_CODE) continue;
    const [severity, code] = key.split(/:(.*)/s) as [Finding['severity'], string];
    out.push({ severity, code, message: `and ${n - FINDINGS_PER_CODE} more ${severity} findings like the ones above (${code})` });
  }
  return out;
}

/** The target of an RDS instance that does not exist yet: checked once create-database made it. */
function toBeCreated(plan: ActivityInput['plan'], findings: Finding[]): EndpointInfo {
  const rds = plan.aws!.rds!;
  findings.push({
    severity: 'info',
    code: 'rds-create',
    message: `target: RDS instance ${rds.instanceId} does not exist yet: create-database creates it (${rds.create!.class}, ${rds.create!.storageGb} GB${rds.create!.engineVersion ? `, PostgreSQL ${rds.create!.engineVersion}` : ''}); the target is checked once it is available`,
  });
  return { description: `target postgres/rds:${rds.instanceId} (to be created)`, version: rds.create!.engineVersion ?? 'to be created' };
}

/**
 * What `check` shows of the target: its tables, their keys and foreign keys (built after the
 * load), and where a column the source does not have comes from.
 */
function targetSchemaStatements(model: SchemaModel, mappingNotes: TransformationNote[]): string[] {
  const post = postLoadStatements(model);
  const notes = model.tables.flatMap((t) => {
    const out: string[] = [];
    if (t.surrogateKey) {
      const natural = t.primaryKey?.columns ?? [];
      out.push(`-- ${qualifiedKey(t)}.${t.surrogateKey.column}: new surrogate key (${t.surrogateKey.type}; keys)${natural.length ? `; the source key (${natural.join(', ')}) stays unique` : ''}`);
    }
    for (const r of t.references ?? []) {
      out.push(`-- ${qualifiedKey(t)}.${r.column}: references ${qualifiedKey(r.parent)}.${r.parentColumn}, found by (${r.on.map(([c, p]) => `${c} = ${p}`).join(', ')}) (keys); on delete ${r.onDelete}`);
    }
    return out;
  });
  const mapped = mappingNotes.filter((n) => n.severity === 'change').map((n) => `-- ${n.table ? `${qualifiedKey(n.table)}: ` : ''}${n.message} (rule ${n.ruleId})`);
  return [...createSchemaStatements(model), ...[...post.primaryKeys, ...post.uniques, ...post.foreignKeys].map((s) => s.sql), ...mapped, ...notes];
}
