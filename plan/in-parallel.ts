/**
 * Pure (no I/O, deterministic): activities run their lanes with it and so does the load's child
 * workflow, which schedules its tasks `load.parallel` at a time.
 */
/** Runs `worker` over `items` with at most `parallel` at once; the first failure stops new work. */
export async function inParallel<T>(items: T[], parallel: number, worker: (item: T, lane: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: unknown;
  const lane = async (id: number) => {
    while (failed === undefined && next < items.length) {
      const item = items[next++]!;
      try {
        await worker(item, id);
      } catch (err) {
        failed ??= err;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(parallel, items.length)) }, (_, i) => lane(i)));
  if (failed !== undefined) throw failed;
}
