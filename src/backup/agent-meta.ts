/**
 * The meta keys an agent keeps in its storage, as `createAgent` (the peer key) and `ConclaveService` (the
 * rest) read them: a restored or rewritten data directory must look exactly like one an agent wrote.
 */

/** The agent's libp2p private key, protobuf-encoded (`create-agent.ts`). */
export const META_PEER_KEY = 'peer-key'
/** The peer id the directory belongs to, UTF-8 (`service.ts`). */
export const META_PEER_ID = 'peer-id'
/** The cluster's id, UTF-8 (`service.ts`). */
export const META_CLUSTER_ID = 'cluster-id'
/** `[1]` once the agent left its cluster, `[0]` while it is a member (`service.ts`). */
export const META_LEFT = 'left'
