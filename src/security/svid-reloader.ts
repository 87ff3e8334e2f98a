/**
 * Re-reads an agent's SVID files (and bundle files) on an interval and rotates to them when they change:
 * how an agent follows SVIDs that a SPIRE helper renews on disk, without a restart. A renewed set that
 * does not load (a certificate already written, its key not yet) is tried again at every poll until it
 * does, and its error is reported once per content.
 */

import { readFile } from 'node:fs/promises'
import type { Cancel, Scheduler } from '../time/scheduler.ts'
import { isPath, type PemSource, type SvidRotation } from './options.ts'

export interface SvidReloaderHooks {
  /** Rotates to the renewed material; rejects if it does not load or validate. */
  rotate(rotation: SvidRotation): Promise<void>
  /** A renewed set that could not be used (once per distinct content). */
  onError(err: unknown): void
}

export class SvidReloader {
  private readonly sources: SvidRotation
  private readonly hooks: SvidReloaderHooks
  private readonly cancelPolling: Cancel
  /** The content last rotated to (the one loaded at start, at first). */
  private applied: string | undefined
  private failed: string | undefined
  private polling = false
  private stopped = false

  constructor(sources: SvidRotation, intervalMs: number, hooks: SvidReloaderHooks, scheduler: Scheduler) {
    this.sources = sources
    this.hooks = hooks
    // What the agent started with: only a change from it is a renewal.
    void this.read().then(
      read => {
        this.applied ??= read.key
      },
      () => {},
    )
    this.cancelPolling = scheduler.every(intervalMs, () => void this.poll())
  }

  stop(): void {
    this.stopped = true
    this.cancelPolling()
  }

  /** One look at the files; resolves when any rotation it started is done. */
  private async poll(): Promise<void> {
    if (this.polling || this.stopped) return
    this.polling = true
    try {
      let read: { key: string; rotation: SvidRotation }
      try {
        read = await this.read()
      } catch (err) {
        // A file being replaced may be missing for a moment: the next poll reads it.
        this.report('unreadable', err)
        return
      }
      if (read.key === this.applied || this.stopped) return
      try {
        await this.hooks.rotate(read.rotation)
        this.applied = read.key
        this.failed = undefined
      } catch (err) {
        this.report(read.key, err)
      }
    } finally {
      this.polling = false
    }
  }

  private report(key: string, err: unknown): void {
    if (this.failed === key) return
    this.failed = key
    this.hooks.onError(err)
  }

  /** The files' contents, as a rotation, and a key that changes when any of them does. */
  private async read(): Promise<{ key: string; rotation: SvidRotation }> {
    const { svid, trustBundle, federatedBundles } = this.sources
    const [certificate, key] = await Promise.all([load(svid.certificate), load(svid.key)])
    const bundle = trustBundle === undefined ? undefined : await load(trustBundle)
    const federated: Record<string, PemSource> = {}
    for (const [trustDomain, source] of Object.entries(federatedBundles ?? {})) {
      federated[trustDomain] = await load(source)
    }
    const parts = [certificate, key, bundle ?? '', ...Object.values(federated)]
    const rotation: SvidRotation = { svid: { certificate, key } }
    if (bundle !== undefined) rotation.trustBundle = bundle
    if (federatedBundles !== undefined) rotation.federatedBundles = federated
    return {
      key: parts
        .map(part => (typeof part === 'string' ? part : Buffer.from(part).toString('base64')))
        .join('\0'),
      rotation,
    }
  }
}

/** A file path's current content; inline text or bytes as they are. */
async function load(source: PemSource): Promise<PemSource> {
  return isPath(source) ? new Uint8Array(await readFile(source as string)) : source
}
