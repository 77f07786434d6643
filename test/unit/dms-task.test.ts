import { dmsNames, dmsSslMode, dmsTableDone, dmsTableMapping, dmsTaskPhase, dmsTaskSettings } from '../../plan/dms-task';

describe('what the aws runner asks of DMS', () => {
  test('identifiers start with a letter, have no hyphen runs and no trailing hyphen', () => {
    expect(dmsNames({ name: '2shop--eu-' })).toEqual({
      task: 'dbferry-2shop-eu-task',
      sourceEndpoint: 'dbferry-2shop-eu-source',
      targetEndpoint: 'dbferry-2shop-eu-target',
      subscription: 'dbferry-2shop-eu-events',
      sourceCertificate: 'dbferry-2shop-eu-source-ca',
      targetCertificate: 'dbferry-2shop-eu-target-ca',
    });
  });

  test('a DMS mapping goes as it was given; patterns become selection rules, quoted parts taken literally', () => {
    const mappings = { rules: [{ 'rule-type': 'selection' as const, 'rule-id': '7', 'rule-name': 'x', 'rule-action': 'include' as const, 'object-locator': { 'schema-name': 'Shop', 'table-name': '%' } }] };
    expect(JSON.parse(dmsTableMapping({ include: [], exclude: [], mappings }))).toEqual(mappings);
    // `_` and `[` are literal in dbferry's patterns, wildcards in DMS's: bracketed.
    expect(JSON.parse(dmsTableMapping({ include: ['shop.%', '"my.schema".order_lines'], exclude: ['shop.tmp_%'] })).rules).toEqual([
      { 'rule-type': 'selection', 'rule-id': '1', 'rule-name': 'dbferry-include-1', 'rule-action': 'include', 'object-locator': { 'schema-name': 'shop', 'table-name': '%' } },
      { 'rule-type': 'selection', 'rule-id': '2', 'rule-name': 'dbferry-include-2', 'rule-action': 'include', 'object-locator': { 'schema-name': 'my.schema', 'table-name': 'order[_]lines' } },
      { 'rule-type': 'selection', 'rule-id': '3', 'rule-name': 'dbferry-exclude-3', 'rule-action': 'exclude', 'object-locator': { 'schema-name': 'shop', 'table-name': 'tmp[_]%' } },
    ]);
  });

  test('a MySQL source selects its URL database by default, as dbferry does; given patterns stay', () => {
    const rules = (include: string[], exclude: string[] = []) => JSON.parse(dmsTableMapping({ include, exclude }, 'shop')).rules.map((r: any) => [r['rule-action'], r['object-locator']]);
    expect(rules(['%.%'], ['%.tmp_%'])).toEqual([
      ['include', { 'schema-name': 'shop', 'table-name': '%' }],
      ['exclude', { 'schema-name': '%', 'table-name': 'tmp[_]%' }],
    ]);
    expect(rules(['other.%'])).toEqual([['include', { 'schema-name': 'other', 'table-name': '%' }]]);
  });

  test('settings: dbferry made the tables, nothing truncated, changes held after a load with CDC, no row skipped silently', () => {
    const cdc = JSON.parse(dmsTaskSettings('full-load-and-cdc'));
    expect(cdc.FullLoadSettings).toMatchObject({ TargetTablePrepMode: 'DO_NOTHING', StopTaskCachedChangesNotApplied: true, StopTaskCachedChangesApplied: false });
    expect(cdc.TargetMetadata).toMatchObject({ SupportLobs: true, FullLobMode: true, LimitedSizeLobMode: false });
    expect(Object.values(cdc.ErrorBehavior)).toEqual(Array(5).fill('SUSPEND_TABLE'));
    expect(JSON.parse(dmsTaskSettings('full-load')).FullLoadSettings.StopTaskCachedChangesNotApplied).toBe(false);
  });

  test('SSL modes map one to one; disable is none', () => {
    expect([undefined, { mode: 'disable' as const }, { mode: 'require' as const }, { mode: 'verify-ca' as const }, { mode: 'verify-full' as const }].map(dmsSslMode)).toEqual([
      'none',
      'none',
      'require',
      'verify-ca',
      'verify-full',
    ]);
  });

  test('task and table states in dbferry words', () => {
    expect(dmsTaskPhase('stopped', 'Stop Reason STOPPED_AFTER_FULL_LOAD')).toBe('loaded-changes-held');
    expect(dmsTaskPhase('stopped', 'Stop Reason STOPPED_AFTER_CACHED_EVENTS')).toBe('loaded-changes-held');
    expect(dmsTaskPhase('stopped', 'Stop Reason STOPPED_DUE_TO_LOW_DISK')).toBe('failed');
    expect(dmsTaskPhase('stopped', 'Stop Reason FULL_LOAD_ONLY_FINISHED')).toBe('loaded');
    expect(dmsTaskPhase('stopped', 'Stop Reason FATAL_ERROR')).toBe('failed');
    expect(dmsTaskPhase('stopped', 'Stop Reason NORMAL')).toBe('stopped');
    expect(dmsTaskPhase('failed', undefined)).toBe('failed');
    expect(dmsTaskPhase('ready', undefined)).toBe('starting');
    expect(dmsTaskPhase('running', undefined)).toBe('running');
    expect(['Table completed', 'Table error', 'Table cancelled', 'Full load', 'Before load'].map(dmsTableDone)).toEqual(['done', 'error', 'error', 'loading', 'loading']);
  });
});
