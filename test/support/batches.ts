/**
 * A batched stream (a ChangeStream, a ReplicationStream) one item at a time, for tests that
 * look for one event. Breaking out of the loop ends the stream's iteration: what was left of the
 * last batch is gone, so read a stream through one loop only.
 */
export async function* oneByOne<T>(batches: AsyncIterable<T[]>): AsyncGenerator<T, void, undefined> {
  for await (const batch of batches) yield* batch;
}
