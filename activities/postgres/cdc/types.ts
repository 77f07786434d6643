/**
 * What the pgoutput decoder produces and the applier consumes. Values stay as the server's text
 * bytes (pgoutput protocol 1 sends text): they go into COPY on the target unchanged, so no value
 * ever passes through a JavaScript number or Date.
 */

import type { ColumnValue, Tuple } from '../../apply/tuple';

export { UNCHANGED, type ColumnValue, type Tuple, type Unchanged } from '../../apply/tuple';

export interface RelationColumn {
  /** Part of the replica identity (the key pgoutput sends for UPDATE/DELETE). */
  key: boolean;
  name: string;
  typeOid: number;
  typmod: number;
}

/**
 * Positions are 64-bit LSNs as bigint (format with formatLsn). Times are epoch microseconds.
 * Inside a stream block (protocol 2: a transaction sent while it runs), the row, relation, type
 * and logical messages carry `xid`, the (sub)transaction they belong to.
 */
export type PgoutputMessage =
  | { tag: 'begin'; finalLsn: bigint; commitTime: bigint; xid: number }
  | { tag: 'commit'; flags: number; commitLsn: bigint; endLsn: bigint; commitTime: bigint }
  | { tag: 'origin'; lsn: bigint; name: string }
  /** Protocol 2: a piece of the in-progress transaction `xid` follows, up to stream-stop. */
  | { tag: 'stream-start'; xid: number; first: boolean }
  | { tag: 'stream-stop' }
  | { tag: 'stream-commit'; xid: number; flags: number; commitLsn: bigint; endLsn: bigint; commitTime: bigint }
  /** The streamed transaction `xid` (subxid = xid) or one of its subtransactions rolled back. */
  | { tag: 'stream-abort'; xid: number; subxid: number }
  | (StreamedMessage & { xid?: number });

type StreamedMessage =
  | {
      tag: 'relation';
      relationId: number;
      schema: string;
      name: string;
      /** d default, n nothing, f full, i index */
      replicaIdentity: string;
      columns: RelationColumn[];
    }
  | { tag: 'type'; typeOid: number; schema: string; name: string }
  | { tag: 'insert'; relationId: number; new: Tuple }
  /** `old` is the key (K) or the whole old row (O) when the key changed or identity is FULL. */
  | { tag: 'update'; relationId: number; old?: { kind: 'K' | 'O'; tuple: Tuple }; new: Tuple }
  | { tag: 'delete'; relationId: number; old: { kind: 'K' | 'O'; tuple: Tuple } }
  | { tag: 'truncate'; relationIds: number[]; cascade: boolean; restartIdentity: boolean }
  | { tag: 'message'; transactional: boolean; lsn: bigint; prefix: string; content: Buffer };

/**
 * One XLogData frame of the replication stream, decoded, or a primary keepalive: the server has
 * sent everything up to `walEnd` (its walStart is walEnd too).
 */
export interface WalMessage {
  /** WAL position of this message's data (walStart of the XLogData header). */
  walStart: bigint;
  /** The server's current end of WAL when it sent it. */
  walEnd: bigint;
  message: PgoutputMessage | { tag: 'keepalive' };
}
