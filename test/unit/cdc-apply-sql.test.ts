import { TableSql } from '../../activities/apply/apply-sql';
import type { ApplyTable } from '../../activities/apply/change';

const hostile: ApplyTable = { key: 'x', schema: 'Sales Ü', name: 'Order "Items"', columns: ['Id', 'line"no', 'select', 'note'], keyColumns: [0, 1] };
const plain: ApplyTable = { key: 'p', schema: 'public', name: 'accounts', columns: ['aid', 'bid', 'abalance'], keyColumns: [0] };

describe('applier statements', () => {
  it('quotes every identifier and keeps values out of the text', () => {
    const sql = new TableSql(hostile, false);
    expect(sql.upsertFrom()).toBe(
      `INSERT INTO "Sales Ü"."Order ""Items""" ("Id", "line""no", "select", "note") OVERRIDING SYSTEM VALUE ` +
        `SELECT s."Id", s."line""no", s."select", s."note" FROM ${sql.tempTable('upsert', [0, 1, 2, 3])} AS s ` +
        `ON CONFLICT ("Id", "line""no") DO UPDATE SET "select" = EXCLUDED."select", "note" = EXCLUDED."note"`,
    );
    expect(sql.updateOne([3])).toBe(`UPDATE ONLY "Sales Ü"."Order ""Items""" SET "note" = $1 WHERE "Id" = $2 AND "line""no" = $3`);
    expect(sql.deleteOne()).toBe(`DELETE FROM ONLY "Sales Ü"."Order ""Items""" WHERE "Id" = $1 AND "line""no" = $2`);
  });

  it('gives each table and column set its own temp table, the same one every time', () => {
    const sql = new TableSql(hostile, false);
    const names = [sql.tempTable('update', [0, 1, 2]), sql.tempTable('update', [0, 1, 3]), sql.tempTable('upsert', [0, 1, 2, 3]), sql.tempTable('delete', [0, 1])];
    expect(new Set(names).size).toBe(4);
    expect(new TableSql({ ...plain, name: 'other' }, false).tempTable('delete', [0])).not.toBe(new TableSql(plain, false).tempTable('delete', [0]));
    expect(new TableSql({ ...hostile }, false).tempTable('update', [0, 1, 2])).toBe(names[0]);
    expect(names.every((n) => /^pg_temp\."dbferry_apply_[0-9a-f]{24}"$/.test(n))).toBe(true);
  });

  it('updates and deletes with ONLY, except on a partitioned table, and gives integer keys their range', () => {
    const sql = new TableSql(plain, false, true);
    const tmp = sql.tempTable('update', [0, 2]);
    expect(sql.updateFrom([0, 2], { min: 5, max: 9 })).toBe(
      `UPDATE ONLY "public"."accounts" AS t SET "abalance" = s."abalance" FROM ${tmp} AS s WHERE t."aid" = s."aid" AND t."aid" BETWEEN 5 AND 9`,
    );
    expect(sql.updateFrom([0])).toBeNull();
    const parted = new TableSql(plain, true);
    expect(parted.deleteUsing({ min: 1, max: 2 })).toBe(`DELETE FROM "public"."accounts" AS t USING ${parted.tempTable('delete', [0])} AS s WHERE t."aid" = s."aid"`);
    expect(parted.truncateTarget()).toBe('"public"."accounts"');
    expect(sql.truncateTarget()).toBe('ONLY "public"."accounts"');
  });

  it('moves a row to its new key with the unchanged columns of the old row, upserting only what is present', () => {
    const sql = new TableSql(plain, false);
    expect(sql.moveOne([0, 2])).toBe(
      `WITH o AS (DELETE FROM ONLY "public"."accounts" WHERE "aid" = $1 RETURNING *) ` +
        `INSERT INTO "public"."accounts" ("aid", "bid", "abalance") OVERRIDING SYSTEM VALUE SELECT $2, o."bid", $3 FROM o ` +
        `ON CONFLICT ("aid") DO UPDATE SET "abalance" = EXCLUDED."abalance"`,
    );
    const keyOnly = new TableSql({ ...plain, columns: ['aid'] }, false);
    expect(keyOnly.moveOne([0])).toMatch(/ON CONFLICT \("aid"\) DO NOTHING$/);
  });
});
