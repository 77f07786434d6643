/**
 * MySQL/MariaDB positions as engine positions: `mysql:<binlog file>:<offset>`. Binlog files are
 * numbered (`binlog.000012`), so positions order by the file's number, then the offset.
 */
export function mysqlPosition(file: string, offset: string | number): string {
  return `mysql:${file}:${offset}`;
}

export function parseMysqlPosition(p: string): { file: string; offset: bigint } {
  const m = /^mysql:(.*):(\d+)$/.exec(p);
  if (!m) throw new Error(`not a MySQL position: ${p}`);
  return { file: m[1]!, offset: BigInt(m[2]!) };
}

export function compareMysqlPositions(a: string, b: string): number {
  const x = parseMysqlPosition(a);
  const y = parseMysqlPosition(b);
  const n = (f: string) => BigInt(/(\d+)$/.exec(f)?.[1] ?? '0');
  if (x.file !== y.file) return n(x.file) < n(y.file) ? -1 : n(x.file) > n(y.file) ? 1 : x.file < y.file ? -1 : 1;
  return x.offset < y.offset ? -1 : x.offset > y.offset ? 1 : 0;
}
