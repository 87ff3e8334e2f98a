/**
 * The node's pubsub service (gossipsub) among libp2p components, typed as the part a caller uses. libp2p's
 * components throw for a service they do not have, and a node may run without pubsub: then undefined.
 */
export function pubsubService<T>(components: object, methods: readonly (keyof T & string)[]): T | undefined {
  try {
    const service = (components as Record<string, unknown>).pubsub as Record<string, unknown> | undefined
    if (service !== undefined && methods.every(method => typeof service[method] === 'function')) {
      return service as T
    }
  } catch {}
  return undefined
}
