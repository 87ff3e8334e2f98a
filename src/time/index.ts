export type { Cancel, Scheduler } from './scheduler.ts'
export { systemScheduler } from './system-scheduler.ts'
export { VirtualScheduler } from './virtual-scheduler.ts'
