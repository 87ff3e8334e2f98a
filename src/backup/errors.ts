import { ConclaveError } from '../errors.ts'

/**
 * A snapshot file that cannot be used: truncated, altered (its sha256 does not match its content), not a
 * conclave snapshot, or of a format version this code does not read. Nothing was written anywhere.
 */
export class SnapshotFileError extends ConclaveError {
  static override readonly name = 'SnapshotFileError'
  constructor(message = 'Not a usable conclave snapshot file', options?: ErrorOptions) {
    super(message, 'SnapshotFileError', 'ERR_SNAPSHOT_FILE', options)
  }
}
