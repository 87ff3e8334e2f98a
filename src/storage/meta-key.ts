import { InvalidArgumentError } from '../errors.ts'

/** Meta keys are non-empty strings and values bytes; anything else is refused before it is stored. */
export function checkMetaKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0) {
    throw new InvalidArgumentError('RaftStorage meta key must be a non-empty string; nothing was written')
  }
}

export function checkMetaValue(value: Uint8Array): void {
  if (!(value instanceof Uint8Array)) {
    throw new InvalidArgumentError('RaftStorage.setMeta: value must be a Uint8Array; nothing was written')
  }
}
