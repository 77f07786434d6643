/**
 * PostgreSQL identifier and literal quoting: pure, so the CLI, workflows, activities and tests
 * share the one implementation (written here rather than taken from pg's escapeIdentifier so
 * that code without the driver can use it).
 */

/** Always quotes, so reserved words, capitals and Unicode survive unchanged. */
export function quoteIdent(name: string): string {
  return '"' + name.replace(/"/g, '""') + '"';
}

/**
 * A string literal that reads the same whatever `standard_conforming_strings` is on the
 * target: backslashes force the E'' form, where they are doubled.
 */
export function quoteLiteral(value: string): string {
  const body = value.replace(/'/g, "''");
  return value.includes('\\') ? `E'${body.replace(/\\/g, '\\\\')}'` : `'${body}'`;
}

export function qualifiedTable(schema: string, name: string): string {
  return `${quoteIdent(schema)}.${quoteIdent(name)}`;
}

export function qualifiedColumn(schema: string, table: string, column: string): string {
  return `${qualifiedTable(schema, table)}.${quoteIdent(column)}`;
}

/**
 * A PostgreSQL name of at most 63 bytes (longer ones are cut on a character boundary, as the
 * server would cut them silently) that is not in `taken`; it is added to `taken`.
 */
export function fitIdentifier(name: string, taken: Set<string>): string {
  // TextEncoder, not Buffer: workflow code imports this module too.
  const bytes = new TextEncoder();
  const cut = (s: string, max: number) => {
    let out = '';
    for (const ch of s) {
      if (bytes.encode(out + ch).length > max) break;
      out += ch;
    }
    return out;
  };
  let candidate = cut(name, 63);
  for (let i = 2; taken.has(candidate); i++) candidate = cut(name, 63 - String(i).length - 1) + '_' + i;
  taken.add(candidate);
  return candidate;
}
