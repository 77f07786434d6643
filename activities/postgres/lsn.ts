/**
 * PostgreSQL WAL positions (LSNs). They are 64-bit, beyond a JavaScript number's exact range,
 * so they travel as bigint and, in history and messages, in PostgreSQL's own `HI/LO` text form.
 */

const LSN_TEXT = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

/** "16/B374D848" → 0x16B374D848n. */
export function parseLsn(text: string): bigint {
  const m = LSN_TEXT.exec(text);
  if (!m) throw new Error(`not a PostgreSQL LSN: ${JSON.stringify(text)} (expected two hex numbers of up to 8 digits, like 16/B374D848)`);
  return (BigInt('0x' + m[1]) << 32n) | BigInt('0x' + m[2]);
}

/** 0x16B374D848n → "16/B374D848", the form pg_current_wal_lsn() prints. */
export function formatLsn(lsn: bigint): string {
  if (lsn < 0n || lsn > 0xffffffffffffffffn) throw new Error(`LSN out of range: ${lsn}`);
  // Numbers print faster than BigInts, and this runs once per change CDC receives.
  const hi = Number(lsn >> 32n);
  const lo = Number(lsn & 0xffffffffn);
  return `${hi.toString(16).toUpperCase()}/${lo.toString(16).toUpperCase()}`;
}

/** Bytes of WAL from b to a (negative when a is behind b), like pg_wal_lsn_diff(a, b). */
export function lsnDiff(a: bigint, b: bigint): bigint {
  return a - b;
}
