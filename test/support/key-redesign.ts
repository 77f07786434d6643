/**
 * The key-redesign scenario shared by the MySQL and PostgreSQL source tests: `orders` has a
 * composite key (customer_id, order_no); `order_items` and `payments` name their order only
 * through those columns. The plan gives orders a surrogate `id` and the children an
 * `order_id` referencing it. The SQL here runs unchanged on both engines.
 */
import { withClient } from './databases';

interface ValidatedTable {
  table: string;
  equal: boolean;
}

/** Runs one statement with `?` parameters on the source. */
export type Exec = (sql: string, params?: unknown[]) => Promise<unknown[][]>;

export const KEYS_PLAN = `keys:
  - table: shop.orders
    surrogateKey: { column: id, type: bigint }
  - table: shop.order_items
    references:
      - { column: order_id, parent: shop.orders, on: { customer_id: customer_id, order_no: order_no } }
  - table: shop.payments
    references:
      - { column: order_id, parent: shop.orders, on: { customer_id: customer_id, order_no: order_no } }
`;

/** The target's keys after the scenario's redesign (as keyFacts lists them), where the items have no foreign key on the source. */
export const KEY_CONSTRAINTS = [
  'order_items f FOREIGN KEY (order_id) REFERENCES shop.orders(id) ON DELETE SET NULL valid',
  'order_items p PRIMARY KEY (customer_id, order_no, line_no) valid',
  'orders p PRIMARY KEY (id) valid',
  'orders u UNIQUE (customer_id, order_no) valid',
  'payments f FOREIGN KEY (order_id) REFERENCES shop.orders(id) ON DELETE SET NULL valid',
  'payments p PRIMARY KEY (payment_id) valid',
];

/** The source's columns of each table: what is compared (the target adds id / order_id). */
export const COLUMNS: Record<string, string[]> = {
  orders: ['customer_id', 'order_no', 'placed', 'total'],
  order_items: ['customer_id', 'order_no', 'line_no', 'sku', 'qty'],
  payments: ['payment_id', 'customer_id', 'order_no', 'amount'],
};

export function createTablesSql(opts: { itemsCascade?: boolean; schema: string }): string[] {
  const s = opts.schema;
  return [
    `CREATE TABLE ${s}.orders (customer_id int NOT NULL, order_no varchar(20) NOT NULL, placed date NOT NULL, total decimal(10,2) NOT NULL, PRIMARY KEY (customer_id, order_no))`,
    // The item's key includes its order's natural key: moving an item changes its key.
    `CREATE TABLE ${s}.order_items (customer_id int NOT NULL, order_no varchar(20) NOT NULL, line_no int NOT NULL, sku varchar(20), qty int NOT NULL,
       PRIMARY KEY (customer_id, order_no, line_no)${
         opts.itemsCascade ? `, FOREIGN KEY (customer_id, order_no) REFERENCES ${s}.orders (customer_id, order_no) ON DELETE CASCADE ON UPDATE CASCADE DEFERRABLE INITIALLY DEFERRED` : ''
       })`,
    // A payment has its own key: moving it is an update of two ordinary columns.
    `CREATE TABLE ${s}.payments (payment_id int NOT NULL PRIMARY KEY, customer_id int, order_no varchar(20), amount decimal(10,2) NOT NULL)`,
  ];
}

const ORDERS = 400;

function values(rows: unknown[][]): { sql: string; params: unknown[] } {
  return { sql: rows.map((r) => `(${r.map(() => '?').join(', ')})`).join(', '), params: rows.flat() };
}

/** The rows the load copies. `orphan`: one payment naming an order that does not exist. */
export async function seed(exec: Exec, opts: { orphan?: boolean } = {}): Promise<void> {
  const orders: unknown[][] = [];
  const items: unknown[][] = [];
  const payments: unknown[][] = [];
  for (let i = 1; i <= ORDERS; i++) {
    const customer = 1 + (i % 37);
    const no = `A-${i}`;
    orders.push([customer, no, `2024-01-${String(1 + (i % 28)).padStart(2, '0')}`, `${i}.50`]);
    for (let line = 1; line <= 3; line++) items.push([customer, no, line, `sku-${(i * line) % 50}`, line]);
    payments.push([i, customer, no, `${i}.50`]);
  }
  // A payment not yet matched to an order (its natural key is NULL: not an orphan).
  payments.push([ORDERS + 1, null, null, '1.00']);
  if (opts.orphan) payments.push([ORDERS + 2, 999, 'GONE-1', '2.00']);
  for (const [table, rows] of [['orders', orders], ['order_items', items], ['payments', payments]] as const) {
    for (let i = 0; i < rows.length; i += 200) {
      const v = values(rows.slice(i, i + 200));
      await exec(`INSERT INTO shop.${table} VALUES ${v.sql}`, v.params);
    }
  }
}

/** A small deterministic random source (mulberry32), so a failure can be replayed. */
function rng(seedValue: number): () => number {
  let a = seedValue >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * An application's writes while CDC runs; `stop()` ends them and resolves with what they did.
 * Each round is one source transaction of one kind; it stops by itself after `opts.rounds`.
 */
export function startWorkload(exec: Exec, opts: { seed?: number; rounds: number }): { stop: () => Promise<Record<string, number>>; rounds: () => number } {
  const random = rng(opts.seed ?? 7);
  const done: Record<string, number> = {};
  let stopping = false;
  let next = 1;
  const pick = (n: number) => 1 + Math.floor(random() * n);
  const existingOrder = async (): Promise<[number, string] | undefined> => {
    const r = await exec('SELECT customer_id, order_no FROM shop.orders ORDER BY customer_id, order_no LIMIT 1 OFFSET ?', [pick(ORDERS) - 1]);
    const row = r[0];
    return row ? [Number(row[0]), String(row[1])] : undefined;
  };
  const round = async (): Promise<void> => {
    const kind = ['order-with-items', 'items-before-order', 'move-item', 'move-payment', 'delete-order', 'delete-item', 'update-order', 'rename-order'][pick(8) - 1]!;
    const customer = pick(37);
    const no = `B-${next++}`;
    await exec('BEGIN');
    try {
      switch (kind) {
        case 'order-with-items':
          await exec('INSERT INTO shop.orders VALUES (?, ?, ?, ?)', [customer, no, '2024-02-01', '10.00']);
          await exec('INSERT INTO shop.order_items VALUES (?, ?, 1, ?, 1), (?, ?, 2, ?, 2)', [customer, no, 'x', customer, no, 'y']);
          await exec('INSERT INTO shop.payments VALUES (?, ?, ?, ?)', [100_000 + next, customer, no, '10.00']);
          break;
        case 'items-before-order':
          await exec('INSERT INTO shop.order_items VALUES (?, ?, 1, ?, 3)', [customer, no, 'early']);
          await exec('INSERT INTO shop.payments VALUES (?, ?, ?, ?)', [100_000 + next, customer, no, '3.00']);
          await exec('INSERT INTO shop.orders VALUES (?, ?, ?, ?)', [customer, no, '2024-02-02', '3.00']);
          break;
        case 'move-item': {
          const to = await existingOrder();
          if (to) await exec('UPDATE shop.order_items SET customer_id = ?, order_no = ?, line_no = ? WHERE line_no = ? AND order_no = ?', [to[0], to[1], 1000 + next, pick(3), `A-${pick(ORDERS)}`]);
          break;
        }
        case 'move-payment': {
          const to = await existingOrder();
          if (to) await exec('UPDATE shop.payments SET customer_id = ?, order_no = ? WHERE payment_id = ?', [to[0], to[1], pick(ORDERS + 1)]);
          break;
        }
        case 'delete-order':
          await exec('DELETE FROM shop.orders WHERE order_no = ?', [`A-${pick(ORDERS)}`]);
          break;
        case 'delete-item':
          await exec('DELETE FROM shop.order_items WHERE order_no = ? AND line_no = 2', [`A-${pick(ORDERS)}`]);
          break;
        case 'update-order':
          await exec('UPDATE shop.orders SET total = total + 1 WHERE order_no = ?', [`A-${pick(ORDERS)}`]);
          break;
        case 'rename-order':
          // The parent's natural key changes: its surrogate key must not.
          await exec("UPDATE shop.orders SET order_no = CONCAT(order_no, 'r') WHERE order_no = ?", [`A-${pick(ORDERS)}`]);
          break;
      }
      await exec('COMMIT');
      done[kind] = (done[kind] ?? 0) + 1;
    } catch (err) {
      await exec('ROLLBACK').catch(() => undefined);
      // A duplicate key from a random move is the application's problem, not the migration's.
      if (!/duplicate|unique/i.test((err as Error).message)) throw err;
    }
  };
  let rounds = 0;
  const loop = (async () => {
    while (!stopping && rounds < opts.rounds) {
      await round();
      rounds++;
    }
  })();
  return {
    rounds: () => rounds,
    stop: async () => {
      stopping = true;
      await loop;
      return done;
    },
  };
}

/** A table's source columns as sorted text rows (numbers and dates in one form on both sides). */
export async function sourceRows(exec: Exec, table: string): Promise<string[]> {
  const cols = COLUMNS[table]!;
  const r = await exec(`SELECT ${cols.join(', ')} FROM shop.${table}`);
  return r.map((row) => row.map((v) => (v === null ? 'NULL' : v instanceof Date ? v.toISOString().slice(0, 10) : String(v))).join('|')).sort();
}

/** The same columns read from the target. */
export async function targetRows(url: string, table: string): Promise<string[]> {
  const cols = COLUMNS[table]!;
  return withClient(url, async (c) => {
    const r = await c.query({ text: `SELECT ${cols.map((x) => `${x}::text`).join(', ')} FROM shop.${table}`, rowMode: 'array' });
    return (r.rows as unknown[][]).map((row) => row.map((v) => (v === null ? 'NULL' : String(v))).join('|')).sort();
  });
}

/**
 * The test's own check of the new keys, independent of dbferry's validation: each child row's
 * order_id is the id of the order with its natural key (NULL when there is none), every order
 * has a distinct id, and the new constraints exist and are valid.
 */
export async function keyFacts(url: string): Promise<{ wrongLinks: Record<string, number>; linked: Record<string, number>; constraints: string[]; distinctIds: boolean }> {
  return withClient(url, async (c) => {
    const wrongLinks: Record<string, number> = {};
    const linked: Record<string, number> = {};
    for (const child of ['order_items', 'payments']) {
      const r = await c.query(`SELECT count(*) FILTER (WHERE ch.order_id IS DISTINCT FROM (SELECT o.id FROM shop.orders o WHERE o.customer_id = ch.customer_id AND o.order_no = ch.order_no))::int AS wrong,
                                      count(ch.order_id)::int AS linked
                                 FROM shop.${child} ch`);
      wrongLinks[child] = r.rows[0].wrong;
      linked[child] = r.rows[0].linked;
    }
    const k = await c.query(`SELECT c.relname || ' ' || k.contype::text || ' ' || pg_get_constraintdef(k.oid) || CASE WHEN k.convalidated THEN ' valid' ELSE ' NOT VALID' END AS d
                               FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
                              WHERE n.nspname = 'shop' AND k.contype IN ('p', 'u', 'f') ORDER BY 1`);
    const ids = await c.query('SELECT count(*) = count(DISTINCT id) AS ok FROM shop.orders');
    return { wrongLinks, linked, constraints: k.rows.map((x: { d: string }) => x.d), distinctIds: ids.rows[0].ok };
  });
}

/** The target's surrogate key of each order, by natural key. */
export async function orderIds(url: string): Promise<Map<string, string>> {
  return withClient(url, async (c) => {
    const r = await c.query("SELECT customer_id || '/' || order_no AS k, id::text FROM shop.orders");
    return new Map(r.rows.map((x: { k: string; id: string }) => [x.k, x.id]));
  });
}

/**
 * After cutover, the scenario's outcome: validation equal for the three tables, the source's
 * columns equal by the test's own reading, every link right, the constraints (`constraints`,
 * as keyFacts lists them) valid, and every order that was there at `idsBefore` (renamed ones
 * included) still under its surrogate key.
 */
export async function expectKeysRight(url: string, exec: Exec, report: { validation: { tables: ValidatedTable[] } }, idsBefore: Map<string, string>, constraints: string[]): Promise<void> {
  expect(report.validation.tables.map((t) => [t.table, t.equal])).toEqual([
    ['shop.order_items', true],
    ['shop.orders', true],
    ['shop.payments', true],
  ]);
  for (const table of ['orders', 'order_items', 'payments']) {
    expect({ table, rows: await targetRows(url, table) }).toEqual({ table, rows: await sourceRows(exec, table) });
  }
  const facts = await keyFacts(url);
  expect(facts.wrongLinks).toEqual({ order_items: 0, payments: 0 });
  expect(facts.distinctIds).toBe(true);
  expect(facts.constraints).toEqual(constraints);
  // A parent's surrogate key survives its updates, including a change of its natural key.
  const idsAfter = await orderIds(url);
  const kept = [...idsBefore].filter(([k]) => idsAfter.has(k));
  expect(kept.length).toBeGreaterThan(100);
  expect(kept.filter(([k, id]) => idsAfter.get(k) !== id)).toEqual([]);
  const renamed = [...idsAfter].filter(([k]) => k.endsWith('r'));
  expect(renamed.length).toBeGreaterThan(0);
  for (const [k, id] of renamed) expect({ k, id }).toEqual({ k, id: idsBefore.get(k.slice(0, -1)) });
}
