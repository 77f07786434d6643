import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { bundleWorkflowCode, DefaultLogger, Runtime, Worker, type ReplayResult, type WorkflowBundle } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
// The SDK's documented path for the JSON history format (the Web UI's download, `temporal workflow show --output json`).
import { historyFromJSON, historyToJSON } from '@temporalio/common/lib/proto-utils';

/**
 * Upgrades don't break running migrations: the current workflow code replays the histories of
 * earlier runs (test/replay/histories/<scenario>/<workflowId>.json, recorded by
 * scripts/record-histories.ts). A change that would make a running migration fail its next
 * workflow task fails here instead; guard such a change with patched().
 */
const HISTORIES = join(__dirname, '..', 'replay', 'histories');
const SCENARIOS = ['full-load', 'pause-retry', 'cdc-cutover'];

interface Recorded {
  scenario: string;
  file: string;
  workflowId: string;
  workflowType: string;
  json: string;
}

function recordedHistories(): Recorded[] {
  const out: Recorded[] = [];
  for (const scenario of readdirSync(HISTORIES)) {
    const dir = join(HISTORIES, scenario);
    if (!statSync(dir).isDirectory()) continue;
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.json'))) {
      const json = readFileSync(join(dir, file), 'utf8');
      const first = (JSON.parse(json) as { events: Array<{ workflowExecutionStartedEventAttributes?: { workflowType?: { name?: string } } }> }).events[0];
      out.push({
        scenario,
        file: `${scenario}/${file}`,
        workflowId: file.slice(0, -'.json'.length),
        workflowType: first?.workflowExecutionStartedEventAttributes?.workflowType?.name ?? '(none)',
        json,
      });
    }
  }
  return out.sort((a, b) => a.file.localeCompare(b.file));
}

// The replay workers' log (the negative checks fail on purpose) is kept, and shown when a replay fails.
const replayLog: string[] = [];
Runtime.install({
  logger: new DefaultLogger('WARN', (e) => replayLog.push(`${e.level} ${e.message}${e.meta?.error ? `: ${String(e.meta.error)}` : ''}`)),
  telemetryOptions: { logging: { filter: { core: 'WARN', other: 'ERROR' }, forward: {} } },
});

const quietLogger = () => {
  const noop = () => undefined;
  return { trace: noop, debug: noop, info: noop, warn: noop, error: noop, log: noop };
};

async function bundle(workflowsPath: string): Promise<WorkflowBundle> {
  return bundleWorkflowCode({ workflowsPath, logger: quietLogger() });
}

async function replay(workflowBundle: WorkflowBundle, histories: Recorded[]): Promise<ReplayResult[]> {
  const results: ReplayResult[] = [];
  const input = histories.map((h) => ({ workflowId: h.workflowId, history: historyFromJSON(JSON.parse(h.json)) }));
  for await (const r of Worker.runReplayHistories({ workflowBundle }, input)) results.push(r);
  return results;
}

describe('recorded migration histories replay against the current workflow code', () => {
  const histories = recordedHistories();
  let current: WorkflowBundle;

  beforeAll(async () => {
    // Bundled from the sources, so the replay uses the code as it is now, built or not.
    current = await bundle(require.resolve('../../workflows'));
  });

  it('has histories of every scenario: a migration and the load it fanned out', () => {
    for (const scenario of SCENARIOS) {
      const types = histories.filter((h) => h.scenario === scenario).map((h) => h.workflowType);
      expect({ scenario, types: [...new Set(types)].sort() }).toEqual({ scenario, types: ['loadBatchWorkflow', 'migrationWorkflow'] });
    }
    // Histories leave the worker: no password, no URL with credentials, even inside a payload.
    for (const h of histories) {
      const decoded = h.json.replace(/"data": ?"([A-Za-z0-9+/=]*)"/g, (_m, b64: string) => JSON.stringify(Buffer.from(b64, 'base64').toString('utf8')));
      expect({ file: h.file, credentials: /[a-z][a-z0-9+.-]*:\/\/[^/\s"@:]+:[^/\s"@]+@/i.test(decoded) }).toEqual({ file: h.file, credentials: false });
    }
  });

  it("reads and writes Temporal's JSON history format with the SDK's own functions (one protobufjs copy)", () => {
    // Two protobufjs copies made these throw "type must be a Type"; package.json pins the one the SDK uses.
    for (const h of histories) {
      const history = historyFromJSON(JSON.parse(h.json));
      const again = JSON.parse(historyToJSON(history)) as { events: Array<{ eventId: string; eventType: string }> };
      const original = JSON.parse(h.json) as { events: Array<{ eventId: string; eventType: string }> };
      expect(again.events.map((e) => [e.eventId, e.eventType])).toEqual(original.events.map((e) => [e.eventId, e.eventType]));
    }
  });

  it('replays every recorded history without a nondeterminism or other replay error', async () => {
    const results = await replay(current, histories);
    // One result per file: a history that was not replayed cannot pass.
    expect(results.map((r) => r.workflowId)).toEqual(histories.map((h) => h.workflowId));
    const failures = results.flatMap((r, i) => (r.error ? [`${histories[i]!.file}: ${r.error.name}: ${r.error.message}`] : []));
    if (failures.length > 0) failures.push('replay worker log:', ...replayLog.slice(-20));
    expect(failures).toEqual([]);
  });

  it('fails a history when the workflow changed incompatibly without patched() (the check can fail)', async () => {
    const incompatible = await bundle(require.resolve('../replay/incompatible-workflows'));
    const fullLoad = histories.find((h) => h.scenario === 'full-load' && h.workflowType === 'migrationWorkflow')!;
    const [result] = await replay(incompatible, [fullLoad]);
    expect(result?.error).toBeInstanceOf(DeterminismViolationError);
    expect(result?.error?.message).toMatch(/nondeterminism/i);
  });

  it('fails a history whose workflow type the code no longer exports', async () => {
    const h = histories.find((x) => x.scenario === 'full-load' && x.workflowType === 'loadBatchWorkflow')!;
    const renamed = { ...h, json: h.json.replace(/"name": "loadBatchWorkflow"/, '"name": "removedWorkflow"') };
    expect(renamed.json).not.toEqual(h.json);
    const [result] = await replay(current, [renamed]);
    expect(result?.error).toBeDefined();
    expect(result?.error?.message).toMatch(/removedWorkflow/);
  });
});
