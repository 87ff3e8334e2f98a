/**
 * A strict reader of DER (the X.509 encoding), just enough to read the certificate extensions node:crypto
 * does not expose: basic constraints, key usage, subject alternative names and criticality. Every read is
 * bounded by its enclosing element; anything malformed (indefinite or non-minimal lengths, truncation,
 * trailing bytes) throws `DerError`.
 */

export class DerError extends Error {
  override readonly name = 'DerError'
}

/** Universal tags used by certificates. */
export const TAG_BOOLEAN = 0x01
export const TAG_INTEGER = 0x02
export const TAG_BIT_STRING = 0x03
export const TAG_OCTET_STRING = 0x04
export const TAG_OID = 0x06
export const TAG_SEQUENCE = 0x30

/** One TLV element: its tag byte and its content, a view into the input. */
export interface DerElement {
  tag: number
  content: Uint8Array
}

/** Reads consecutive elements of `bytes` (the content of a constructed element, or a whole document). */
export class DerReader {
  private readonly bytes: Uint8Array
  private pos = 0

  constructor(bytes: Uint8Array) {
    this.bytes = bytes
  }

  get done(): boolean {
    return this.pos >= this.bytes.byteLength
  }

  /** The tag of the next element, or undefined at the end. */
  peekTag(): number | undefined {
    return this.done ? undefined : this.bytes[this.pos]
  }

  /** Reads the next element; with `expectedTag`, it must have that tag. */
  read(expectedTag?: number): DerElement {
    const bytes = this.bytes
    if (this.pos >= bytes.byteLength) throw new DerError('Truncated element')
    const tag = bytes[this.pos++]
    // High-tag-number form (tag numbers >= 31) never occurs in certificates.
    if ((tag & 0x1f) === 0x1f) throw new DerError('Unsupported multi-byte tag')
    if (expectedTag !== undefined && tag !== expectedTag) {
      throw new DerError(`Expected tag 0x${hex(expectedTag)}, found 0x${hex(tag)}`)
    }
    if (this.pos >= bytes.byteLength) throw new DerError('Truncated length')
    const first = bytes[this.pos++]
    let length: number
    if (first < 0x80) {
      length = first
    } else {
      const count = first & 0x7f
      if (count === 0) throw new DerError('Indefinite length is not DER')
      if (count > 4) throw new DerError('Length too large')
      if (this.pos + count > bytes.byteLength) throw new DerError('Truncated length')
      length = 0
      for (let i = 0; i < count; i++) length = length * 256 + bytes[this.pos++]
      // DER: the shortest form, so no leading zero byte and no long form below 128.
      if (length < 0x80 || bytes[this.pos - count] === 0) throw new DerError('Non-minimal length')
    }
    if (this.pos + length > bytes.byteLength) throw new DerError('Truncated content')
    const content = bytes.subarray(this.pos, this.pos + length)
    this.pos += length
    return { tag, content }
  }

  /** Reads the next element only if it has `tag`. */
  readOptional(tag: number): DerElement | undefined {
    return this.peekTag() === tag ? this.read(tag) : undefined
  }

  /** Throws unless every byte was consumed. */
  end(): void {
    if (!this.done) throw new DerError('Trailing bytes')
  }
}

/** The content of `element` as a reader of its children. */
export function children(element: DerElement): DerReader {
  return new DerReader(element.content)
}

/** Decodes a DER BOOLEAN (0x00 or 0xff only). */
export function readBoolean(element: DerElement): boolean {
  if (element.content.byteLength !== 1) throw new DerError('Invalid BOOLEAN')
  const value = element.content[0]
  if (value === 0) return false
  if (value === 0xff) return true
  throw new DerError('BOOLEAN is not DER')
}

/** Decodes a non-negative INTEGER that fits a safe integer. */
export function readSmallUnsigned(element: DerElement): number {
  const bytes = element.content
  if (bytes.byteLength === 0) throw new DerError('Empty INTEGER')
  if (bytes[0] & 0x80) throw new DerError('Negative INTEGER')
  if (bytes.byteLength > 1 && bytes[0] === 0 && (bytes[1] & 0x80) === 0) {
    throw new DerError('Non-minimal INTEGER')
  }
  if (bytes.byteLength > 7) throw new DerError('INTEGER out of range')
  let value = 0
  for (const byte of bytes) value = value * 256 + byte
  return value
}

/** Decodes an OBJECT IDENTIFIER into its dotted form. */
export function readOid(element: DerElement): string {
  const bytes = element.content
  if (bytes.byteLength === 0) throw new DerError('Empty OID')
  const arcs: number[] = []
  let value = 0
  let started = false
  for (let i = 0; i < bytes.byteLength; i++) {
    const byte = bytes[i]
    if (!started && byte === 0x80) throw new DerError('Non-minimal OID arc')
    started = true
    value = value * 128 + (byte & 0x7f)
    if (value > Number.MAX_SAFE_INTEGER) throw new DerError('OID arc out of range')
    if ((byte & 0x80) === 0) {
      if (arcs.length === 0) {
        const first = value < 80 ? Math.floor(value / 40) : 2
        arcs.push(first, value - first * 40)
      } else {
        arcs.push(value)
      }
      value = 0
      started = false
    }
  }
  if (started) throw new DerError('Truncated OID')
  return arcs.join('.')
}

/** Decodes a BIT STRING into its bits, most significant first: `bit(n)` is named bit n of X.509. */
export function readBitString(element: DerElement): (bit: number) => boolean {
  const bytes = element.content
  if (bytes.byteLength === 0) throw new DerError('Empty BIT STRING')
  const unused = bytes[0]
  if (unused > 7 || (bytes.byteLength === 1 && unused !== 0)) throw new DerError('Invalid BIT STRING')
  const bitCount = (bytes.byteLength - 1) * 8 - unused
  return bit => bit < bitCount && ((bytes[1 + (bit >> 3)] >> (7 - (bit & 7))) & 1) === 1
}

function hex(value: number): string {
  return value.toString(16).padStart(2, '0')
}
