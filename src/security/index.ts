export {
  type ConnectionProtectorFactory,
  generatePsk,
  loadPsk,
  PSK_KEY_BYTES,
  parsePsk,
  pskProtector,
} from '../net/pnet.ts'
export { commandAction, commandAgent, commandSession, raftMessageAction, refuseCommand } from './actions.ts'
export {
  IdentityError,
  type IdentityFailure,
  SvidError,
  type SvidRejection,
  UnauthorizedError,
} from './errors.ts'
export { type Gate, type GateVerdict, OPEN_GATE, SpiffeGate, type SpiffeGateInit } from './gate.ts'
export {
  IDENTITY_PROTOCOL,
  type IdentityComponents,
  type IdentityEvents,
  type IdentityInit,
  IdentityService,
  identityService,
  type PeerIdentity,
} from './identity-protocol.ts'
export { MemberGate, type MemberGateInit } from './member-gate.ts'
export {
  type PemSource,
  type ResolvedSecurity,
  resolveSecurity,
  type SecurityOptions,
  type SecurityRefusal,
} from './options.ts'
export { ACTIONS, type Action, AuthorizationPolicy, type PolicyRule } from './policy.ts'
export { ConclaveSecurity } from './security.ts'
export { isTrustDomain, parseSpiffeId, type SpiffeId } from './spiffe-id.ts'
export {
  loadSvid,
  parseCertificate,
  parsePemCertificates,
  parsePrivateKey,
  parseTrustBundle,
  type TrustBundleSet,
  type VerifiedSvid,
  verifySvid,
  type X509Svid,
} from './svid.ts'
