/**
 * One simulated agent's view of time, over the run's one virtual timeline (`Scheduler`): what the agent's
 * code gets as its `Scheduler` (src/time). Real machines disagree about time, so each agent's clocks may
 *
 * - be set off: the wall clock reads `wallOffsetMs` ahead (or behind) the simulator's real time, and may
 *   step forward or back at any moment (`stepWall`, NTP); monotonic time never steps;
 * - run at a slightly different rate (`rate`, both clocks; delays are measured on the agent's clock): the
 *   drift bound is `MAX_DRIFT` (see faults), what the lease margins are meant to absorb;
 * - stop: during a pause (`pauseFor`: a GC pause, a VM suspend, a slow disk write that blocks the event loop)
 *   nothing of the agent runs; timers that fall due, messages that arrive, run when it ends. Monotonic time
 *   keeps running across a pause, as CLOCK_MONOTONIC does, so the agent sees the jump when it wakes.
 *
 * Every call belongs to one incarnation of the agent: a crash (`kill`) drops every pending timer of it.
 * What the agent's callbacks throw is the process's uncaught exception: `onUncaught` decides what follows.
 */

import type { Cancel, TimerOptions, Scheduler as TimeScheduler } from '../../src/time/index.ts'
import type { Scheduler } from './scheduler.ts'

export interface ClockSkew {
  /** Wall clock minus the simulator's real time at start (ms). */
  wallOffsetMs: number
  /** Rate of the agent's clocks against real time (1 = exact). */
  rate: number
}

/** Where the simulated wall clock starts (real time 0): a plausible epoch. */
export const WALL_START = 1_700_000_000_000

export class AgentClock implements TimeScheduler {
  private readonly base: Scheduler
  private rate: number
  /** Real time at which `localAtAnchor` was the agent's monotonic time (re-anchored at rate changes). */
  private anchorReal: number
  private localAtAnchor: number
  private wallOffset: number
  /** Real time until which the agent is paused (nothing of it runs). */
  pausedUntil = 0
  /** Bumped by `kill`: callbacks of an earlier incarnation never run. */
  private incarnation = 0
  /** What happens to an exception thrown by one of the agent's callbacks. */
  onUncaught: (error: unknown) => void = error => {
    throw error
  }
  /** Runs after each of the agent's callbacks (the simulator observes the agent there). */
  afterEach: () => void = () => {}

  constructor(base: Scheduler, skew: ClockSkew = { wallOffsetMs: 0, rate: 1 }) {
    this.base = base
    this.rate = skew.rate
    this.anchorReal = base.now
    this.localAtAnchor = base.now
    this.wallOffset = skew.wallOffsetMs
  }

  now(): number {
    return this.localAtAnchor + (this.base.now - this.anchorReal) * this.rate
  }

  wallNow(): number {
    return Math.floor(WALL_START + this.now() + this.wallOffset)
  }

  /** The agent's wall clock minus real time, now (ms). */
  get wallError(): number {
    return this.wallNow() - (WALL_START + this.base.now)
  }

  /** A wall-clock step (forward > 0, back < 0); monotonic time is unaffected. */
  stepWall(deltaMs: number): void {
    this.wallOffset += deltaMs
  }

  /** Changes the rate from now on (monotonic time stays continuous). */
  setRate(rate: number): void {
    this.localAtAnchor = this.now()
    this.anchorReal = this.base.now
    this.rate = rate
  }

  get currentRate(): number {
    return this.rate
  }

  /** Nothing of the agent runs for `ms` of real time from now (on top of a pause under way). */
  pauseFor(ms: number): void {
    this.pausedUntil = Math.max(this.pausedUntil, this.base.now) + ms
  }

  get paused(): boolean {
    return this.pausedUntil > this.base.now
  }

  /** The process died: every pending call is dropped, and the pause (if any) with it. */
  kill(): void {
    this.incarnation++
    this.pausedUntil = 0
  }

  /**
   * The scheduler one incarnation of the agent runs on: what it schedules, even from a promise that settles
   * after the crash, belongs to it and never runs (a dead process's code must not touch the next one's disk).
   */
  view(): TimeScheduler {
    const incarnation = this.incarnation
    return {
      now: () => this.now(),
      wallNow: () => this.wallNow(),
      after: (delayMs, fn) => this.after(delayMs, fn, undefined, incarnation),
      every: (intervalMs, fn) => this.every(intervalMs, fn, undefined, incarnation),
    }
  }

  after(delayMs: number, fn: () => void, _options?: TimerOptions, incarnation = this.incarnation): Cancel {
    const state = { cancelled: false }
    const realDelay = Math.max(0, Number.isNaN(delayMs) ? 0 : delayMs) / this.rate
    this.base.after(Math.ceil(realDelay), () => {
      if (!state.cancelled) this.run(incarnation, fn)
    })
    return () => {
      state.cancelled = true
    }
  }

  every(intervalMs: number, fn: () => void, _options?: TimerOptions, incarnation = this.incarnation): Cancel {
    if (!(intervalMs > 0)) throw new RangeError(`interval must be > 0 ms, got ${intervalMs}`)
    const state = { cancelled: false }
    // Each period is measured from the last firing on the agent's clock (a paused agent fires once, late).
    const arm = (): void => {
      this.base.after(Math.max(1, Math.round(intervalMs / this.rate)), () => {
        if (state.cancelled || incarnation !== this.incarnation) return
        this.run(incarnation, fn, () => {
          if (!state.cancelled) arm()
        })
      })
    }
    arm()
    return () => {
      state.cancelled = true
    }
  }

  /**
   * Runs `fn` as the agent (now, or when its pause ends); `then` after it. Used for the agent's timers and
   * for what the network delivers to it.
   */
  run(incarnation: number, fn: () => void, then?: () => void): void {
    if (incarnation !== this.incarnation) return
    if (this.pausedUntil > this.base.now) {
      this.base.at(this.pausedUntil, () => this.run(incarnation, fn, then))
      return
    }
    try {
      fn()
    } catch (error) {
      this.onUncaught(error)
    }
    then?.()
    if (incarnation === this.incarnation) this.afterEach()
  }

  /** The current incarnation, for calls made from outside (network deliveries). */
  get epoch(): number {
    return this.incarnation
  }
}
