/**
 * Writes encoded frames to one stream in order. The first frame of a turn of the event loop is sent at
 * once, the others of that turn together in one `send()` from a microtask; when the stream asks to drain,
 * frames wait in a queue bounded in bytes.
 */

import type { Stream } from '@libp2p/interface'
import { concatFrames } from './frame.ts'

export class FrameWriter {
  private readonly stream: Stream
  private readonly maxQueueBytes: number
  private frames: Uint8Array[] = []
  private bytes = 0
  private scheduled = false
  private flushing = false

  constructor(stream: Stream, maxQueueBytes: number) {
    this.stream = stream
    this.maxQueueBytes = maxQueueBytes
  }

  /** Bytes waiting to be handed to the stream. */
  get queuedBytes(): number {
    return this.bytes
  }

  /**
   * Queues `frame`. Returns false, queuing nothing, if the stream can no longer be written or the queue
   * would go over its bound (the remote is not reading).
   */
  write(frame: Uint8Array): boolean {
    if (this.stream.writeStatus !== 'writable') return false
    if (this.bytes + frame.byteLength > this.maxQueueBytes) return false
    this.frames.push(frame)
    this.bytes += frame.byteLength
    if (!this.scheduled && !this.flushing) {
      this.scheduled = true
      // The first frame of a turn goes out at once; the rest of the turn's frames follow in one write.
      void this.flush()
      queueMicrotask(() => {
        this.scheduled = false
        if (this.frames.length > 0) void this.flush()
      })
    }
    return true
  }

  private async flush(): Promise<void> {
    if (this.flushing) return
    this.flushing = true
    try {
      while (this.frames.length > 0) {
        if (this.stream.writeStatus !== 'writable') {
          this.frames = []
          this.bytes = 0
          return
        }
        const batch = concatFrames(this.frames, this.bytes)
        this.frames = []
        this.bytes = 0
        if (!this.stream.send(batch)) await this.stream.onDrain()
      }
    } catch (err) {
      // The stream failed under us: whoever reads it sees the close.
      this.frames = []
      this.bytes = 0
      this.stream.abort(err instanceof Error ? err : new Error(String(err)))
    } finally {
      this.flushing = false
    }
  }
}
