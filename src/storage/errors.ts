import { ConclaveError } from '../errors.ts'

/**
 * The storage file is not usable as conclave storage: not a SQLite database, another application's
 * database, a schema version this code does not know, or content that breaks the log's invariants.
 * Nothing was written to it.
 */
export class StorageFormatError extends ConclaveError {
  static override readonly name = 'StorageFormatError'
  constructor(message = 'Storage file is corrupt or not conclave storage', options?: ErrorOptions) {
    super(message, 'StorageFormatError', 'ERR_STORAGE_FORMAT', options)
  }
}

/** Another process (or another open storage in this one) holds the storage: one node per data directory. */
export class StorageLockedError extends ConclaveError {
  static override readonly name = 'StorageLockedError'
  constructor(message = 'Storage is in use by another process', options?: ErrorOptions) {
    super(message, 'StorageLockedError', 'ERR_STORAGE_LOCKED', options)
  }
}

/**
 * A write failed below the API (I/O error, disk full, failed fsync). What reached the disk is unknown, so
 * the storage refuses all further use; reopening it reads back what is really durable.
 */
export class StorageFailedError extends ConclaveError {
  static override readonly name = 'StorageFailedError'
  constructor(message = 'Storage failed', options?: ErrorOptions) {
    super(message, 'StorageFailedError', 'ERR_STORAGE_FAILED', options)
  }
}
