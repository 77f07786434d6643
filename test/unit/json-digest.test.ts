import { canonicalJson, JsonDigest, withoutDuplicateKeys } from '../../activities/cross-engine/json-digest';

describe('canonical JSON (cross-engine validation of JSON documents)', () => {
  it('gives one form to documents jsonb holds as equal', () => {
    const same = (a: string, b: string) => expect(canonicalJson(a)).toBe(canonicalJson(b));
    same('{ "b" : 1, "a": [1, 2] }', '{"a": [1, 2], "b": 1}');
    // MySQL reads the first of a duplicate key (the load writes that).
    same('{"a": 1, "a": 2}', '{"a": 1}');
    same('[1, 1.0, 1e0, 10E-1, 0.1e1]', '[1, 1, 1, 1, 1]');
    same('[100, 1e2, 1.00E+2, -0, -0.0, 0.015, 1.5e-2]', '[100, 100, 100, 0, 0, 0.015, 0.015]');
    same(String.raw`"\u00e9\n\/"`, '"é\\n/"');
    same(String.raw`"\ud83d\ude42"`, '"🙂"');
    expect(canonicalJson('12345678901234567890123')).toBe('12345678901234567890123e22');
    expect(canonicalJson('-0.00012300')).toBe('-123e-4');
    expect(canonicalJson(' {"z":{"y":[]},"a":null} ')).toBe('{"a":null,"z":{"y":[]}}');
  });

  it('keeps apart what an application reads differently', () => {
    const differ = (a: string, b: string) => expect(canonicalJson(a)).not.toBe(canonicalJson(b));
    differ('12345678901234567890123', '12345678901234567890124');
    differ('0.015', '0.0150000000000000001');
    differ('{"a": 1}', '{"A": 1}');
    differ('[1, 2]', '[2, 1]');
    differ('"1"', '1');
    differ('null', '"null"');
    differ('{"a": "x "}', '{"a": "x"}');
  });

  it('refuses what is not a document', () => {
    expect(() => canonicalJson('{"a": 1,}')).toThrow(/not a JSON document/);
    expect(() => canonicalJson('[1] 2')).toThrow(/text after the document/);
    expect(() => canonicalJson('"open')).toThrow(/unterminated/);
  });

  it('sums rows order-independently, each document bound to its row, SQL NULL apart from JSON null', () => {
    const sum = (rows: Array<[string, ...Array<string | null>]>) => {
      const d = new JsonDigest();
      for (const [key, ...docs] of rows) d.addRow([key], docs);
      return d.addTo('0');
    };
    expect(sum([['1', '{"a":1}'], ['2', '[1]']])).toBe(sum([['2', '[1.0]'], ['1', '{ "a" : 1 }']]));
    // Two rows' documents swapped read differently.
    expect(sum([['1', '{"a":1}'], ['2', '[1]']])).not.toBe(sum([['1', '[1]'], ['2', '{"a":1}']]));
    expect(sum([['1', null]])).not.toBe(sum([['1', 'null']]));
    expect(sum([['1', '1', '2']])).not.toBe(sum([['1', '2', '1']]));
  });

  it('drops the later members of a duplicate key, keeping the text and order of the rest', () => {
    expect(withoutDuplicateKeys('{"b": 1.50, "a": 1}')).toBeUndefined();
    expect(withoutDuplicateKeys(String.raw`{"b": 1.50, "a": {"x": 1, "x": 2}, "b": 3}`)).toBe(String.raw`{"b":1.50,"a":{"x":1}}`);
    expect(withoutDuplicateKeys('[{"k": "v", "k": null}, 1e2]')).toBe('[{"k":"v"},1e2]');
  });

  it('reads numbers of any length', () => {
    const long = '9'.repeat(5000);
    expect(canonicalJson(`[${long}.5]`)).toBe(`[${long}5e4999]`);
  });
});
