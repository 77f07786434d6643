import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';

jest.setTimeout(5 * 60_000);

const BIN = join(__dirname, '..', '..', 'bin', 'dbferry');

/** `dbferry demo` as README's first command runs it: its own servers, a sample database, the report. */
async function demo(args: string[]): Promise<{ code: number; out: string }> {
  const cwd = mkdtempSync(join(tmpdir(), 'dbferry-demo-test-'));
  // The servers run as their own OS users (postgres, mysql) when we are root: they must reach their folders.
  chmodSync(cwd, 0o755);
  try {
    const child = spawn(process.execPath, [BIN, 'demo', ...args], { cwd, env: process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number>((r) => child.on('close', (c) => r(c ?? -1)));
    return { code, out };
  } finally {
    rmSync(cwd, { recursive: true, force: true });
  }
}

describe('dbferry demo', () => {
  it('migrates the sample shop from a throwaway MariaDB: every table equal, the zero dates counted', async () => {
    const r = await demo(['--source', 'mysql', '--rows', '2000']);
    expect({ code: r.code, tail: r.code === 0 ? '' : r.out.slice(-3000) }).toEqual({ code: 0, tail: '' });
    expect(r.out).toMatch(/migration demo-mysql: completed/);
    expect(r.out).toMatch(/shop\.order_items\s+4000\s+equal/);
    expect(r.out).toMatch(/shop\.customers: \d+ zero or invalid dates in birthday written as NULL/);
    expect(r.out).toMatch(/validation: every table equal/);
  });

  it('refuses an unknown source engine with exit 2', async () => {
    const r = await demo(['--source', 'oracle']);
    expect(r.code).toBe(2);
    expect(r.out).toMatch(/--source: expected postgres or mysql, got "oracle"/);
    const j = await demo(['--source', 'oracle', '--json']);
    expect(j.code).toBe(2);
    expect(j.out).toContain('{"error":{"exitCode":2,"message":"--source: expected postgres or mysql, got \\"oracle\\""}}');
  });
});
