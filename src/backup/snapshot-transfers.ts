/**
 * The serving side of `snapshot.save` over the client protocol: a snapshot file can be larger than one RPC
 * frame, so the agent keeps the file it took for a short while and hands it out in chunks. At most a few
 * are held at once, each dropped after a while without a request for it.
 */

import { InvalidArgumentError, LimitExceededError, NotFoundError } from '../errors.ts'
import type { SavedSnapshot } from './take-snapshot.ts'

/** Bytes of snapshot per answer: base64 makes it 4/3 of that, well under an RPC frame (4 MiB). */
export const SNAPSHOT_CHUNK_BYTES = 1024 * 1024
/** Snapshot files held at once by one agent for clients still fetching them. */
const MAX_TRANSFERS = 2
/** A transfer with no request for this long is dropped. */
const IDLE_MS = 30_000

/** One answer of `snapshot.save`. */
export interface SnapshotChunk {
  /** Pass it back, with `offset`, for the next chunk. */
  handle: string
  /** The snapshot file's size in bytes. */
  totalBytes: number
  /** Where this chunk starts in the file. */
  offset: number
  /** The chunk, base64. */
  chunk: string
  /** The KV revision the snapshot holds. */
  revision: number
}

interface Transfer {
  bytes: Uint8Array
  revision: number
  timer: NodeJS.Timeout
}

export class SnapshotTransfers {
  private readonly transfers = new Map<string, Transfer>()

  /** Takes a snapshot with `take` and answers its first chunk. */
  async start(take: () => Promise<SavedSnapshot>): Promise<SnapshotChunk> {
    if (this.transfers.size >= MAX_TRANSFERS) {
      throw new LimitExceededError(
        `${MAX_TRANSFERS} snapshots are being fetched from this agent; try again when one is done`,
      )
    }
    const saved = await take()
    if (this.transfers.size >= MAX_TRANSFERS) {
      throw new LimitExceededError(`${MAX_TRANSFERS} snapshots are being fetched from this agent`)
    }
    const handle = crypto.randomUUID()
    this.transfers.set(handle, {
      bytes: saved.bytes,
      revision: saved.header.revision,
      timer: this.expiry(handle),
    })
    return this.chunk(handle, 0)
  }

  /** The chunk at `offset` of the transfer `handle`; the last one ends the transfer. */
  chunk(handle: string, offset: number): SnapshotChunk {
    const transfer = this.transfers.get(handle)
    if (transfer === undefined) {
      throw new NotFoundError('no snapshot transfer with this handle (finished, or idle for too long)')
    }
    if (!Number.isSafeInteger(offset) || offset < 0 || offset > transfer.bytes.length) {
      throw new InvalidArgumentError(`offset must be an integer from 0 to ${transfer.bytes.length}`)
    }
    clearTimeout(transfer.timer)
    const end = Math.min(offset + SNAPSHOT_CHUNK_BYTES, transfer.bytes.length)
    if (end === transfer.bytes.length) this.transfers.delete(handle)
    else transfer.timer = this.expiry(handle)
    return {
      handle,
      totalBytes: transfer.bytes.length,
      offset,
      chunk: Buffer.from(transfer.bytes.subarray(offset, end)).toString('base64'),
      revision: transfer.revision,
    }
  }

  /** Drops every transfer (the agent stops). */
  clear(): void {
    for (const transfer of this.transfers.values()) clearTimeout(transfer.timer)
    this.transfers.clear()
  }

  private expiry(handle: string): NodeJS.Timeout {
    const timer = setTimeout(() => this.transfers.delete(handle), IDLE_MS)
    timer.unref()
    return timer
  }
}
