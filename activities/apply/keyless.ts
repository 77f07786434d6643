import type { Client } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { qualifiedTable, quoteIdent } from '../../plan/sql-names';
import type { ApplyTable } from './apply';
import { CopyTextEncoder } from './copy-text';
import { UNCHANGED, type Tuple } from './tuple';

type KeylessChange = { kind: 'insert'; new: Tuple } | { kind: 'update'; old: Tuple; new: Tuple } | { kind: 'delete'; old: Tuple };

/** Changes buffered before they are applied (they wait for the keyed applier's flush). */
const MAX_BUFFERED = 20_000;

/**
 * Tables without a primary key reach CDC only with REPLICA IDENTITY FULL (the source refuses
 * updates and deletes of a published table with no identity at all): their changes carry the
 * whole old row, matched on the target one row at a time (duplicates are legitimate there).
 * Inserts, the usual case (logs, histories), go in by COPY. Applied in their source order,
 * after the keyed applier has flushed, in the caller's transaction.
 */
export class KeylessApplier {
  readonly #pending = new Map<ApplyTable, KeylessChange[]>();
  #count = 0;

  constructor(private readonly client: Client) {}

  get full(): boolean {
    return this.#count >= MAX_BUFFERED;
  }

  add(table: ApplyTable, change: KeylessChange): void {
    let list = this.#pending.get(table);
    if (!list) this.#pending.set(table, (list = []));
    list.push(change);
    this.#count++;
  }

  /** Applies everything buffered; the keyed applier must have nothing in flight. */
  async flush(): Promise<void> {
    for (const [table, changes] of this.#pending) {
      let inserts: Tuple[] = [];
      for (const c of changes) {
        if (c.kind === 'insert') {
          inserts.push(c.new);
          continue;
        }
        await this.#copy(table, inserts);
        inserts = [];
        await this.#matchOne(table, c);
      }
      await this.#copy(table, inserts);
    }
    this.#pending.clear();
    this.#count = 0;
  }

  async #copy(table: ApplyTable, rows: Tuple[]): Promise<void> {
    if (rows.length === 0) return;
    const positions = table.columns.map((_, i) => i);
    const enc = new CopyTextEncoder();
    for (const r of rows) enc.writeRow(r, positions);
    const cols = table.columns.map(quoteIdent).join(', ');
    const stream = this.client.query(copyFrom(`COPY ${qualifiedTable(table.schema, table.name)} (${cols}) FROM STDIN`));
    await pipeline(Readable.from(enc.finish()), stream);
  }

  /** One row equal to the old row (on every column the stream carried) is updated or deleted. */
  async #matchOne(table: ApplyTable, c: Exclude<KeylessChange, { kind: 'insert' }>): Promise<void> {
    const params: Array<string | null> = [];
    const param = (v: Buffer | null) => {
      params.push(v === null ? null : v.toString('utf8'));
      return `$${params.length}`;
    };
    const where = table.columns
      .flatMap((name, i) => {
        const v = c.old[i];
        return v === UNCHANGED || v === undefined ? [] : [`${quoteIdent(name)} IS NOT DISTINCT FROM ${param(v)}`];
      })
      .join(' AND ');
    const t = qualifiedTable(table.schema, table.name);
    // SKIP LOCKED: an identical row that a large transaction applied while it runs (its own
    // connection, not committed yet) holds is not the one this change took on the source, and
    // waiting for it would wait for this applier itself.
    const pick = `ctid = (SELECT ctid FROM ONLY ${t} WHERE ${where || 'true'} LIMIT 1 FOR UPDATE SKIP LOCKED)`;
    if (c.kind === 'delete') {
      await this.client.query(`DELETE FROM ONLY ${t} WHERE ${pick}`, params);
      return;
    }
    const set = table.columns.flatMap((name, i) => {
      const v = c.new[i];
      return v === UNCHANGED || v === undefined ? [] : [`${quoteIdent(name)} = ${param(v)}`];
    });
    if (set.length > 0) await this.client.query(`UPDATE ONLY ${t} SET ${set.join(', ')} WHERE ${pick}`, params);
  }
}
