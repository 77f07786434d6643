import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type FrameLocator, type Page } from 'playwright-core';
import { waitFor } from '../../local/processes';
import { migrationWorkflowId } from '../../workflows/search-attributes';
import { cliEnv, dbferry, startWorker, temporalClient, writePlan, type WorkerProcess } from '../support/cli';
import { createDatabase, dropDatabase, requiredEnv, serverUrl, uniqueName, withClient } from '../support/databases';

/** Screenshots of what the browser saw, kept as test artifacts (test-artifacts/ is git-ignored). */
const ARTIFACTS = join(__dirname, '..', '..', 'test-artifacts', 'ui');
/** Debian's chromium (scripts/setup.sh installs it); playwright-core brings no browser of its own. */
const CHROMIUM = process.env.DBFERRY_TEST_CHROMIUM ?? '/usr/bin/chromium';
const PHASE_QUERY = 'DbferryPhase = "awaiting-operator"';

/**
 * What an operator sees in the Temporal Web UI of the test's dev server, in a real browser:
 * the workflow list filtered by the DbferryPhase search attribute shows the paused migration
 * (and not a completed one), and its page shows the static summary and details dbferry starts
 * it with and the current details the workflow keeps up to date (rendered markdown).
 */
describe('Temporal Web UI in a browser', () => {
  const sourceDb = uniqueName('uisrc');
  const pausedTarget = uniqueName('uitgt');
  const doneTarget = uniqueName('uitgt');
  const paused = uniqueName('ui').replace(/_/g, '-');
  const done = uniqueName('uidone').replace(/_/g, '-');
  const queue = `q-${paused}`;
  const secrets = {
    SRC_URL: serverUrl('source', sourceDb),
    PAUSED_URL: serverUrl('target', pausedTarget),
    DONE_URL: serverUrl('target', doneTarget),
  };
  const plan = (name: string, targetEnv: string) =>
    writePlan(`
name: ${name}
source: { engine: postgres, url: env:SRC_URL }
target: { engine: postgres, url: env:${targetEnv}, createDatabase: false }
`);
  let worker: WorkerProcess | undefined;
  let browser: Browser | undefined;

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    rmSync(join(ARTIFACTS, 'failure.png'), { force: true });
    const source = await createDatabase('source', sourceDb);
    await withClient(source, (c) =>
      c.query(`
        CREATE TABLE public.customers (id int PRIMARY KEY, name text NOT NULL);
        CREATE TABLE public.orders (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES public.customers, total numeric(10,2));
        INSERT INTO public.customers SELECT g, 'customer ' || g FROM generate_series(1, 20) g;
        INSERT INTO public.orders SELECT g, 1 + g % 20, g * 1.5 FROM generate_series(1, 50) g;`),
    );
    // A table someone else left on one target stops create-tables there: that migration waits for an operator.
    const target = await createDatabase('target', pausedTarget);
    await withClient(target, (c) => c.query('CREATE TABLE public.orders (planted_by_someone_else int)'));
    await createDatabase('target', doneTarget);
    // The worker stays up while the browser looks: the UI asks it for the current details.
    worker = await startWorker(cliEnv(queue, secrets));
  });

  afterAll(async () => {
    await browser?.close();
    if (worker) await dbferry(['abort', paused, '--reason', 'end of the UI test'], cliEnv(queue));
    await worker?.stop();
    await Promise.all([dropDatabase('source', sourceDb), dropDatabase('target', pausedTarget), dropDatabase('target', doneTarget)]);
  });

  it('lists the paused migration under a DbferryPhase filter and shows its summary and current details', async () => {
    const [pausedRun, doneRun] = await Promise.all([
      dbferry(['start', plan(paused, 'PAUSED_URL'), '--wait'], cliEnv(queue)),
      dbferry(['start', plan(done, 'DONE_URL'), '--wait'], cliEnv(queue)),
    ]);
    expect(pausedRun.code).toBe(3); // awaiting an operator
    expect(pausedRun.stdout).toContain('FAILED STEP: create-tables (TargetObjectConflict) on table public.orders');
    expect(doneRun.code).toBe(0);
    // The list the UI shows comes from visibility: wait until both phases are searchable there.
    const { client, close } = await temporalClient();
    try {
      for (const [name, phase] of [[paused, 'awaiting-operator'], [done, 'completed']] as const) {
        await waitFor(`${name} listed as ${phase}`, 15_000, async () => {
          for await (const _ of client.workflow.list({ query: `WorkflowId = '${migrationWorkflowId(name)}' AND DbferryPhase = '${phase}'` })) return true;
          return undefined;
        });
      }
    } finally {
      await close();
    }

    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
    page.setDefaultTimeout(20_000);
    try {
      await checkInBrowser(page);
    } catch (err) {
      await page.screenshot({ path: join(ARTIFACTS, 'failure.png'), fullPage: true }).catch(() => undefined);
      throw err;
    }
  });

  async function checkInBrowser(page: Page): Promise<void> {
    // The workflow list, filtered by a visibility query in the URL (as the UI's own filter bar writes it).
    const ui = requiredEnv('DBFERRY_TEST_TEMPORAL_UI');
    await page.goto(`${ui}/namespaces/default/workflows?query=${encodeURIComponent(PHASE_QUERY)}`);
    const pausedLink = page.getByRole('link', { name: migrationWorkflowId(paused), exact: true });
    await pausedLink.waitFor({ state: 'visible' });
    expect(new URL(page.url()).searchParams.get('query')).toBe(PHASE_QUERY);
    // The filter is applied: the completed migration is not in this list.
    expect(await page.getByRole('link', { name: migrationWorkflowId(done), exact: true }).count()).toBe(0);
    await page.screenshot({ path: join(ARTIFACTS, 'workflows-awaiting-operator.png'), fullPage: true });

    // The migration's page; summary, details and current details are on its "User Metadata" tab.
    await pausedLink.click();
    await page.waitForURL(new RegExp(`/workflows/${migrationWorkflowId(paused)}/`));
    await page.getByRole('heading', { name: migrationWorkflowId(paused) }).waitFor({ state: 'visible' });
    await page.getByRole('tab', { name: 'User Metadata' }).click();
    await page.waitForURL(/\/user-metadata$/);

    // Each block is markdown rendered in an iframe right after its heading.
    const block = (heading: string): FrameLocator =>
      page.getByRole('heading', { name: heading, exact: true }).locator('xpath=following::iframe[1]').contentFrame();
    const shows = async (frame: FrameLocator, text: string) => {
      const hit = frame.getByText(text).first();
      await hit.waitFor({ state: 'visible' });
      expect(await hit.isVisible()).toBe(true);
    };
    const summary = block('Summary');
    await shows(summary, `dbferry full-load: ${paused} (postgres → postgres)`);
    const details = block('Details');
    await shows(details, `dbferry migration ${paused}`);
    await shows(details, 'source: postgres, URL from env:SRC_URL');
    const current = block('Current Details');
    await shows(current, 'waiting for an operator');
    await shows(current, 'create-tables failed (TargetObjectConflict) on public.orders');
    expect(await current.locator('body').innerText()).toContain(`${paused} (full-load) — phase awaiting-operator`);
    await page.screenshot({ path: join(ARTIFACTS, 'migration-user-metadata.png'), fullPage: true });
  }
});
