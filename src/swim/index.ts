/** SWIM/Lifeguard membership: the pure core, its configuration and its wire codec. */

export { Awareness } from './awareness.ts'
export { BroadcastQueue, updateIncarnation, updateSubject } from './broadcast-queue.ts'
export { decodeSwimMessage, encodeSwimMessage, SwimCodecError, swimMessageError } from './codec.ts'
export {
  DETECTION_PROBE_PERIODS,
  indirectNackTimeout,
  memberlistLanBound,
  probePeriod,
  pushPullInterval,
  resolveConfig,
  retransmitLimit,
  SWIM_FAST_CONFIG,
  SWIM_LAN_CONFIG,
  suspicionTimeout,
} from './config.ts'
export { Suspicion, timeoutAfterConfirmations } from './suspicion.ts'
export { Swim } from './swim.ts'
export type * from './types.ts'
export { SWIM_LIMITS } from './validate.ts'
