import { dirname } from 'node:path';
import { historyFromJSON, historyToJSON, type History } from '@temporalio/common/lib/proto-utils';
import * as proto from '@temporalio/proto';
import { patchProtobufRoot } from '@temporalio/proto/lib/patch-protobuf-root';

/**
 * Temporal's JSON history format (what the Web UI's download and `temporal workflow show
 * --output json` produce, and `Worker.runReplayHistory` reads), both ways.
 *
 * The SDK's `historyToJSON` / `historyFromJSON` (@temporalio/common 1.24) fail with "type must
 * be a Type" when @temporalio/common and @temporalio/proto each get their own copy of
 * protobufjs 8, as they do under this package-lock (the top-level protobufjs is 7 for gRPC):
 * the reflection types come from one copy and the `instanceof` checks from the other. Then the
 * same conversion runs with the protobufjs copy that @temporalio/proto's types were built with.
 */
export function historyToJson(history: History): string {
  try {
    return historyToJSON(history);
  } catch (err) {
    if (!isMixedProtobufCopies(err)) throw err;
    const { toJson } = protojsonOfProto();
    return JSON.stringify(toJson(historyType(), proto.temporal.api.history.v1.History.fromObject(history)), null, 2);
  }
}

/** A History (eventId as Long, so the replayer takes it as it is) from the JSON format. */
export function historyFromJson(json: unknown): History {
  try {
    return historyFromJSON(json);
  } catch (err) {
    if (!isMixedProtobufCopies(err)) throw err;
    const { fromJson } = protojsonOfProto();
    const loaded = fromJson(historyType(), json, { ignoreUnknownFields: true });
    if (!loaded) throw new TypeError('invalid history JSON');
    return loaded as History;
  }
}

function isMixedProtobufCopies(err: unknown): boolean {
  return err instanceof TypeError && /must be a Type/.test(err.message);
}

interface ProtoJson {
  toJson(type: unknown, message: unknown): unknown;
  fromJson(type: unknown, json: unknown, options?: { ignoreUnknownFields?: boolean }): unknown;
}

function protojsonOfProto(): ProtoJson {
  const path = require.resolve('protobufjs/ext/protojson', { paths: [dirname(require.resolve('@temporalio/proto'))] });
  return require(path) as ProtoJson;
}

function historyType(): unknown {
  return (patchProtobufRoot(proto) as unknown as { lookupType(name: string): unknown }).lookupType('temporal.api.history.v1.History');
}
