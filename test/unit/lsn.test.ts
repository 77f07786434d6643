import { formatLsn, lsnDiff, parseLsn } from '../../activities/postgres/lsn';

describe('LSNs', () => {
  it('parses PostgreSQL text form into a 64-bit value', () => {
    expect(parseLsn('16/B374D848')).toBe(0x16b374d848n);
    expect(parseLsn('0/0')).toBe(0n);
    expect(parseLsn('0/1')).toBe(1n);
    expect(parseLsn('ffffffff/ffffffff')).toBe(0xffffffffffffffffn);
  });

  it('formats like pg_current_wal_lsn(): upper-case hex, no padding', () => {
    expect(formatLsn(0x16b374d848n)).toBe('16/B374D848');
    expect(formatLsn(0n)).toBe('0/0');
    expect(formatLsn(0x1_0000_000an)).toBe('1/A');
    expect(formatLsn(0xffffffffffffffffn)).toBe('FFFFFFFF/FFFFFFFF');
  });

  it('round-trips', () => {
    for (const v of [0n, 1n, 0xffffffffn, 0x100000000n, 0x123456789abcdefn, 0xffffffffffffffffn]) {
      expect(parseLsn(formatLsn(v))).toBe(v);
    }
  });

  it.each(['', '16', '16/', '/B374D848', '16/B374D848/1', 'G/0', '123456789/0', '0/123456789', ' 0/1', '0/1 ', '-1/0', '0x1/0'])(
    'rejects %j, naming the value',
    (text) => {
      expect(() => parseLsn(text)).toThrow(`not a PostgreSQL LSN: ${JSON.stringify(text)}`);
    },
  );

  it('refuses to format values outside 64 bits', () => {
    expect(() => formatLsn(-1n)).toThrow(/out of range/);
    expect(() => formatLsn(1n << 64n)).toThrow(/out of range/);
  });

  it('diffs like pg_wal_lsn_diff', () => {
    expect(lsnDiff(parseLsn('1/0'), parseLsn('0/FFFFFFFF'))).toBe(1n);
    expect(lsnDiff(parseLsn('0/10'), parseLsn('0/20'))).toBe(-16n);
  });
});
