import { closeSync, fsyncSync, mkdirSync, openSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { DatabaseSync, type StatementSync } from 'node:sqlite'
import { ClosedError, InvalidArgumentError } from '../errors.ts'
import type {
  Config,
  Entry,
  EntryType,
  HardState,
  PersistedState,
  Snapshot,
  SnapshotMeta,
} from '../raft/types.ts'
import { StorageFailedError, StorageFormatError, StorageLockedError } from './errors.ts'
import { checkMetaKey, checkMetaValue } from './meta-key.ts'
import type { RaftStorage, StorageUpdate } from './raft-storage.ts'
import { planCompact, planWrite, type StoredLogView, type WritePlan } from './write-plan.ts'

/** The file `SqliteRaftStorage.open(dir)` and `openRaftStorage(dir)` use inside a data directory. */
export const STORAGE_FILE_NAME = 'conclave.sqlite'

/** Marks the file as ours in the SQLite header (`PRAGMA application_id`), so `file(1)` and we can tell. */
const APPLICATION_ID = 0x636e636c // 'cncl'
const FORMAT = 'conclave-raft-storage'
/** The on-disk format this code writes; raised with every change of the tables, with a step in `MIGRATIONS`. */
export const STORAGE_SCHEMA_VERSION = 1
const SCHEMA_VERSION = STORAGE_SCHEMA_VERSION
/**
 * How a file of schema version n becomes version n + 1, by n: run in order, in the transaction that opens
 * the file, so a file is migrated whole or not at all. Version 1 is the first format: nothing yet.
 */
const MIGRATIONS: ReadonlyMap<number, (db: DatabaseSync) => void> = new Map()
const TABLES = ['entries', 'hard_state', 'meta', 'snapshot', 'storage_info']

// STRICT tables make SQLite itself refuse a value of the wrong type.
const SCHEMA = `
CREATE TABLE storage_info (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT, WITHOUT ROWID;
CREATE TABLE hard_state (
  id INTEGER PRIMARY KEY CHECK (id = 0), term INTEGER NOT NULL, vote TEXT NOT NULL, commit_index INTEGER NOT NULL
) STRICT;
CREATE TABLE snapshot (
  id INTEGER PRIMARY KEY CHECK (id = 0), snapshot_index INTEGER NOT NULL, term INTEGER NOT NULL,
  config TEXT NOT NULL, data BLOB NOT NULL
) STRICT;
CREATE TABLE entries (
  log_index INTEGER PRIMARY KEY, term INTEGER NOT NULL, type INTEGER NOT NULL CHECK (type IN (0, 1)),
  data BLOB NOT NULL
) STRICT;
CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) STRICT, WITHOUT ROWID;
INSERT INTO storage_info (key, value) VALUES ('format', '${FORMAT}'), ('schemaVersion', '${SCHEMA_VERSION}');
INSERT INTO hard_state (id, term, vote, commit_index) VALUES (0, 0, '', 0);
PRAGMA application_id = ${APPLICATION_ID};
`

const SQLITE_BUSY = 5
const SQLITE_LOCKED = 6
const SQLITE_CORRUPT = 11
const SQLITE_NOTADB = 26

type Row = Record<string, unknown>
type Statements = ReturnType<typeof prepareStatements>

/**
 * `RaftStorage` in one SQLite file (`node:sqlite`): WAL journal, `synchronous=FULL` (every commit is
 * fsync'd), one `BEGIN IMMEDIATE ... COMMIT` per write, statements prepared once. The file is held with an
 * exclusive lock while open, so a second process opening the same file gets `StorageLockedError`.
 *
 * Opening refuses, with `StorageFormatError`, a file that is not SQLite, another application's database, a
 * schema version this code does not know, or content that breaks the log's invariants.
 */
export class SqliteRaftStorage implements RaftStorage {
  /** Open (creating if needed, mode 0600 inside a 0700 directory) the storage file in `dataDir`. */
  static open(dataDir: string): SqliteRaftStorage {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 })
    return new SqliteRaftStorage(join(dataDir, STORAGE_FILE_NAME))
  }

  readonly path: string
  readonly #db: DatabaseSync
  readonly #statements: Statements
  #hardState: HardState
  #snapshotMeta: SnapshotMeta | undefined
  #lastIndex: number
  #lastTerm: number
  #closed = false
  #failure: unknown
  /** The cached hard state has a commit index the file does not have yet (see `#apply`). */
  #commitUnwritten = false

  /** Open the storage file at `path` (its directory must exist), creating it if it does not exist. */
  constructor(path: string) {
    this.path = path
    createPrivateFile(path)
    let db: DatabaseSync
    try {
      db = new DatabaseSync(path, { timeout: 0, enableForeignKeyConstraints: false })
    } catch (error) {
      throw translateOpenError(path, error)
    }
    try {
      db.enableDefensive(true)
      // Exclusive locking before WAL: the lock is held for the connection's life and no shared-memory
      // index is needed, so another process cannot open the file behind a running node.
      db.exec('PRAGMA locking_mode = EXCLUSIVE')
      // Identify the file before writing anything to it: someone else's database is left byte for byte alone.
      const fresh = identifyFile(db, path)
      const mode = db.prepare('PRAGMA journal_mode = WAL').get()
      if (mode?.journal_mode !== 'wal') throw new StorageFormatError(`${path}: cannot use a WAL journal`)
      db.exec('PRAGMA synchronous = FULL')
      db.exec('PRAGMA journal_size_limit = 67108864')
      // BEGIN IMMEDIATE takes the write lock, which exclusive locking mode keeps until close.
      db.exec('BEGIN IMMEDIATE')
      if (fresh === true) db.exec(SCHEMA)
      else if (fresh !== false) migrate(db, fresh)
      db.exec('COMMIT')
      const check = db.prepare('PRAGMA quick_check').all()
      if (check.length !== 1 || check[0].quick_check !== 'ok') {
        throw new StorageFormatError(`${path}: SQLite integrity check failed: ${JSON.stringify(check)}`)
      }
      this.#statements = prepareStatements(db)
      this.#db = db
      const state = readCachedState(this.#statements, path)
      this.#hardState = state.hardState
      this.#snapshotMeta = state.snapshotMeta
      this.#lastIndex = state.lastIndex
      this.#lastTerm = state.lastTerm
    } catch (error) {
      db.close()
      throw translateOpenError(path, error)
    }
  }

  load(): PersistedState {
    const statements = this.#usable()
    try {
      return this.#read(statements)
    } catch (error) {
      const code = sqliteCode(error)
      if (code !== SQLITE_CORRUPT && code !== SQLITE_NOTADB) throw error
      throw new StorageFormatError(`${this.path}: corrupt database: ${messageOf(error)}`, { cause: error })
    }
  }

  #read(statements: Statements): PersistedState {
    const hardState = { ...this.#hardState }
    let snapshot: Snapshot | undefined
    const snapshotRow = statements.selectSnapshot.get() as Row | undefined
    if (snapshotRow !== undefined) {
      snapshot = {
        meta: snapshotMetaFrom(snapshotRow, this.path),
        data: blob(snapshotRow, 'data', this.path),
      }
    }
    const entries: Entry[] = []
    let expectedIndex = (snapshot?.meta.index ?? 0) + 1
    let previousTerm = snapshot?.meta.term ?? 0
    for (const row of statements.selectEntries.iterate() as Iterable<Row>) {
      const entry: Entry = {
        term: integer(row, 'term', this.path),
        index: integer(row, 'log_index', this.path),
        type: entryType(row, this.path),
        data: blob(row, 'data', this.path),
      }
      if (entry.index !== expectedIndex || entry.term < previousTerm) {
        throw new StorageFormatError(
          `${this.path}: log entry ${entry.index} (term ${entry.term}) breaks the log after index ` +
            `${expectedIndex - 1} (term ${previousTerm})`,
        )
      }
      expectedIndex++
      previousTerm = entry.term
      entries.push(entry)
    }
    return { hardState, snapshot, entries }
  }

  write(update: StorageUpdate): void {
    this.#usable()
    const plan = planWrite(this.#view(), update)
    if (plan.snapshot === undefined && plan.entries.length === 0 && plan.hardState === undefined) return
    this.#apply(plan)
  }

  compact(snapshot: Snapshot): void {
    this.#usable()
    this.#apply(planCompact(this.#view(), snapshot))
  }

  getMeta(key: string): Uint8Array | undefined {
    const statements = this.#usable()
    checkMetaKey(key)
    const row = statements.selectMeta.get(key) as Row | undefined
    return row === undefined ? undefined : blob(row, 'value', this.path)
  }

  setMeta(key: string, value: Uint8Array): void {
    const statements = this.#usable()
    checkMetaKey(key)
    checkMetaValue(value)
    this.#transaction(() => statements.upsertMeta.run(key, value))
  }

  /**
   * Operator repair of a term poisoned by a forged or corrupted message (README, "A poisoned Raft term"):
   * lowers the durable term to `term` and clears the vote, the one write that breaks "the term never
   * decreases". Safe only when every agent of the cluster is stopped and gets the same `term`, at least the
   * highest last-log term of them all, so that no later election reuses a term some log already holds.
   * Refused with `InvalidArgumentError` when `term` is not an integer, is below this log's last term or the
   * snapshot's, or does not lower the stored term.
   */
  repairTerm(term: number): void {
    const statements = this.#usable()
    const floor = Math.max(this.#lastTerm, this.#snapshotMeta?.term ?? 0)
    if (!Number.isSafeInteger(term) || term < floor || term >= this.#hardState.term) {
      throw new InvalidArgumentError(
        `term must be an integer from ${floor} (this log's last term) to below the stored ${this.#hardState.term}, got ${term}`,
      )
    }
    const commit = this.#hardState.commit
    this.#transaction(() => statements.updateHardState.run(term, '', commit))
    this.#hardState = { term, vote: '', commit }
    this.#commitUnwritten = false
  }

  /** The last log term (or the snapshot's when the log is empty): the least a repaired term may be. */
  lastLogTerm(): number {
    this.#usable()
    return Math.max(this.#lastTerm, this.#snapshotMeta?.term ?? 0)
  }

  close(): void {
    if (this.#closed) return
    if (this.#commitUnwritten && this.#failure === undefined) {
      const { term, vote, commit } = this.#hardState
      try {
        this.#transaction(() => this.#statements.updateHardState.run(term, vote, commit))
      } catch {
        // Closing anyway: the commit index on disk is allowed to lag.
      }
    }
    this.#closed = true
    this.#db.close()
  }

  #usable(): Statements {
    if (this.#closed) throw new ClosedError('RaftStorage is closed')
    if (this.#failure !== undefined) {
      throw new StorageFailedError(`${this.path}: an earlier write failed; reopen the storage`, {
        cause: this.#failure,
      })
    }
    return this.#statements
  }

  #view(): StoredLogView {
    return {
      hardState: this.#hardState,
      snapshotMeta: this.#snapshotMeta,
      lastIndex: this.#lastIndex,
      lastTerm: this.#lastTerm,
      termBetween: index => {
        const row = this.#statements.selectTerm.get(index) as Row | undefined
        if (row === undefined) throw new StorageFormatError(`${this.path}: log entry ${index} is missing`)
        return integer(row, 'term', this.path)
      },
    }
  }

  #apply(plan: WritePlan): void {
    const statements = this.#statements
    // Raft needs the log, the term and the vote on disk before it acts on them, but never the commit index
    // (a restarted node relearns it from the leader; etcd's MustSync). A write that only moves the commit
    // index stays in memory and goes to disk with the next write or at close: the leader would otherwise
    // write (and fsync) twice per round, entries and then commit, and the WAL would grow twice as fast.
    const commitOnly =
      plan.snapshot === undefined &&
      plan.truncateFrom === undefined &&
      plan.entries.length === 0 &&
      plan.hardState !== undefined &&
      plan.hardState.term === this.#hardState.term &&
      plan.hardState.vote === this.#hardState.vote
    if (commitOnly && plan.hardState !== undefined) {
      this.#hardState = { ...this.#hardState, commit: plan.hardState.commit }
      this.#commitUnwritten = true
      return
    }
    const hardState = plan.hardState ?? (this.#commitUnwritten ? this.#hardState : undefined)
    this.#transaction(() => {
      const { snapshot } = plan
      if (snapshot !== undefined) {
        if (plan.keepEntriesAfterSnapshot) statements.deleteEntriesThrough.run(snapshot.meta.index)
        else statements.deleteAllEntries.run()
        const { index, term, config } = snapshot.meta
        statements.upsertSnapshot.run(index, term, encodeConfig(config), snapshot.data)
      }
      if (plan.truncateFrom !== undefined) statements.deleteEntriesFrom.run(plan.truncateFrom)
      const insert = statements.insertEntry
      for (const entry of plan.entries) {
        insert.run(entry.index, entry.term, entry.type === 'config' ? 1 : 0, entry.data)
      }
      if (hardState !== undefined) {
        const { term, vote, commit } = hardState
        statements.updateHardState.run(term, vote, commit)
      }
    })
    this.#commitUnwritten = false
    // Only now, with the commit durable, does the cache move.
    if (plan.snapshot !== undefined) {
      const { index, term, config } = plan.snapshot.meta
      this.#snapshotMeta = {
        index,
        term,
        config: { voters: [...config.voters], nonVoters: [...config.nonVoters] },
      }
    }
    if (plan.hardState !== undefined) {
      const { term, vote, commit } = plan.hardState
      this.#hardState = { term, vote, commit }
    }
    this.#lastIndex = plan.lastIndex
    this.#lastTerm = plan.lastTerm
  }

  /** Runs `work` in one durable transaction; a failure rolls back and leaves the storage failed. */
  #transaction(work: () => void): void {
    const statements = this.#statements
    try {
      statements.begin.run()
      work()
      statements.commit.run()
    } catch (error) {
      this.#failure = error
      try {
        if (this.#db.isTransaction) statements.rollback.run()
      } catch {
        // The failure above is the one to report; the storage is unusable either way.
      }
      throw new StorageFailedError(`${this.path}: write failed: ${messageOf(error)}`, { cause: error })
    }
  }
}

function prepareStatements(db: DatabaseSync) {
  const prepare = (sql: string): StatementSync => db.prepare(sql)
  return {
    begin: prepare('BEGIN IMMEDIATE'),
    commit: prepare('COMMIT'),
    rollback: prepare('ROLLBACK'),
    selectHardState: prepare('SELECT term, vote, commit_index FROM hard_state WHERE id = 0'),
    updateHardState: prepare('UPDATE hard_state SET term = ?, vote = ?, commit_index = ? WHERE id = 0'),
    selectSnapshot: prepare('SELECT snapshot_index, term, config, data FROM snapshot WHERE id = 0'),
    selectSnapshotMeta: prepare('SELECT snapshot_index, term, config FROM snapshot WHERE id = 0'),
    upsertSnapshot: prepare(
      'INSERT OR REPLACE INTO snapshot (id, snapshot_index, term, config, data) VALUES (0, ?, ?, ?, ?)',
    ),
    selectEntries: prepare('SELECT log_index, term, type, data FROM entries ORDER BY log_index'),
    selectLogBounds: prepare(
      'SELECT min(log_index) AS first, max(log_index) AS last, count(*) AS count FROM entries',
    ),
    selectTerm: prepare('SELECT term FROM entries WHERE log_index = ?'),
    insertEntry: prepare('INSERT INTO entries (log_index, term, type, data) VALUES (?, ?, ?, ?)'),
    deleteEntriesFrom: prepare('DELETE FROM entries WHERE log_index >= ?'),
    deleteEntriesThrough: prepare('DELETE FROM entries WHERE log_index <= ?'),
    deleteAllEntries: prepare('DELETE FROM entries'),
    selectMeta: prepare('SELECT value FROM meta WHERE key = ?'),
    upsertMeta: prepare('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)'),
  }
}

/**
 * Brings a file of an older schema version up to `SCHEMA_VERSION` (inside the caller's transaction).
 * `identifyFile` already checked that every step exists.
 */
function migrate(db: DatabaseSync, from: number): void {
  for (let version = from; version < SCHEMA_VERSION; version++) MIGRATIONS.get(version)?.(db)
  db.prepare("UPDATE storage_info SET value = ? WHERE key = 'schemaVersion'").run(String(SCHEMA_VERSION))
}

/**
 * True for a file with nothing in it yet, false for conclave storage of this code's schema version, the
 * version of conclave storage this code migrates (see `MIGRATIONS`); throws `StorageFormatError` for
 * anything else. Reads only.
 */
function identifyFile(db: DatabaseSync, path: string): boolean | number {
  const tables = (
    db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name").all() as Row[]
  )
    .map(row => String(row.name))
    .filter(name => !name.startsWith('sqlite_'))
  const applicationId = db.prepare('PRAGMA application_id').get()?.application_id
  if (tables.length === 0 && applicationId === 0) return true
  if (applicationId !== APPLICATION_ID || !tables.includes('storage_info')) {
    throw new StorageFormatError(`${path}: not a conclave storage file (another application's database)`)
  }
  const info = new Map(
    (db.prepare('SELECT key, value FROM storage_info').all() as Row[]).map(row => [row.key, row.value]),
  )
  if (info.get('format') !== FORMAT) {
    throw new StorageFormatError(
      `${path}: not a conclave storage file (format ${String(info.get('format'))})`,
    )
  }
  const version = Number(info.get('schemaVersion'))
  if (version > SCHEMA_VERSION && Number.isInteger(version)) {
    throw new StorageFormatError(
      `${path}: storage schema version ${version} is not supported (this code reads version ` +
        `${SCHEMA_VERSION}); it was written by a newer conclave. Run that version, or move the data to this ` +
        "one: 'conclave snapshot save' from an agent of the newer version, then 'conclave snapshot restore' " +
        '(README, "Upgrades")',
    )
  }
  if (!Number.isInteger(version) || version < 1 || !hasMigrations(version)) {
    throw new StorageFormatError(
      `${path}: storage schema version ${String(info.get('schemaVersion'))} is not supported ` +
        `(this code reads version ${SCHEMA_VERSION} and migrates none older)`,
    )
  }
  // An older file has its own tables, which its migration steps change.
  if (version !== SCHEMA_VERSION) return version
  if (tables.join() !== TABLES.join()) {
    throw new StorageFormatError(
      `${path}: unexpected tables ${tables.join(', ')} (expected ${TABLES.join(', ')})`,
    )
  }
  return false
}

function hasMigrations(from: number): boolean {
  for (let version = from; version < SCHEMA_VERSION; version++) if (!MIGRATIONS.has(version)) return false
  return true
}

/** The state validation needs, read once at open and then kept in step with every commit. */
function readCachedState(statements: Statements, path: string) {
  const hardStateRow = statements.selectHardState.get() as Row | undefined
  if (hardStateRow === undefined) throw new StorageFormatError(`${path}: the hard state row is missing`)
  const vote = hardStateRow.vote
  if (typeof vote !== 'string') throw new StorageFormatError(`${path}: the stored vote is not a string`)
  const hardState: HardState = {
    term: integer(hardStateRow, 'term', path),
    vote,
    commit: integer(hardStateRow, 'commit_index', path),
  }
  const snapshotRow = statements.selectSnapshotMeta.get() as Row | undefined
  const snapshotMeta = snapshotRow === undefined ? undefined : snapshotMetaFrom(snapshotRow, path)
  const baseIndex = snapshotMeta?.index ?? 0
  const bounds = statements.selectLogBounds.get() as Row
  const count = integer(bounds, 'count', path)
  let lastIndex = baseIndex
  let lastTerm = snapshotMeta?.term ?? 0
  if (count > 0) {
    const first = integer(bounds, 'first', path)
    const last = integer(bounds, 'last', path)
    if (first !== baseIndex + 1 || last - first + 1 !== count) {
      throw new StorageFormatError(
        `${path}: the log is not contiguous after the snapshot at ${baseIndex}: ` +
          `${count} entries from ${first} to ${last}`,
      )
    }
    lastIndex = last
    lastTerm = integer(statements.selectTerm.get(last) as Row, 'term', path)
  }
  if (hardState.commit > lastIndex) {
    throw new StorageFormatError(
      `${path}: commit index ${hardState.commit} is beyond the last index ${lastIndex}`,
    )
  }
  return { hardState, snapshotMeta, lastIndex, lastTerm }
}

function snapshotMetaFrom(row: Row, path: string): SnapshotMeta {
  return {
    index: integer(row, 'snapshot_index', path),
    term: integer(row, 'term', path),
    config: decodeConfig(row.config, path),
  }
}

function encodeConfig(config: Config): string {
  return JSON.stringify({ voters: config.voters, nonVoters: config.nonVoters })
}

function decodeConfig(text: unknown, path: string): Config {
  let value: unknown
  try {
    value = JSON.parse(String(text))
  } catch (error) {
    throw new StorageFormatError(`${path}: the snapshot's config is not JSON`, { cause: error })
  }
  const { voters, nonVoters } = (value ?? {}) as { voters?: unknown; nonVoters?: unknown }
  if (!isStringArray(voters) || !isStringArray(nonVoters)) {
    throw new StorageFormatError(`${path}: the snapshot's config is malformed`)
  }
  return { voters, nonVoters }
}

function isStringArray(value: unknown): value is string[] {
  return Array.isArray(value) && value.every(item => typeof item === 'string')
}

function integer(row: Row, column: string, path: string): number {
  const value = row[column]
  if (!Number.isSafeInteger(value) || (value as number) < 0) {
    throw new StorageFormatError(`${path}: column ${column} holds ${String(value)}, not an integer >= 0`)
  }
  return value as number
}

function blob(row: Row, column: string, path: string): Uint8Array {
  const value = row[column]
  if (!(value instanceof Uint8Array)) throw new StorageFormatError(`${path}: column ${column} is not a blob`)
  return value
}

function entryType(row: Row, path: string): EntryType {
  const type = row.type
  if (type === 0) return 'normal'
  if (type === 1) return 'config'
  throw new StorageFormatError(`${path}: log entry type ${String(type)} is unknown`)
}

/**
 * Creates the file before SQLite does, so it is private (SQLite gives its WAL the same mode) and its
 * directory entry is durable before the first commit relies on it.
 */
function createPrivateFile(path: string): void {
  let descriptor: number
  try {
    descriptor = openSync(path, 'wx', 0o600)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return
    throw error
  }
  closeSync(descriptor)
  if (process.platform === 'win32') return // directories cannot be fsync'd there
  const directory = openSync(dirname(path), 'r')
  try {
    fsyncSync(directory)
  } finally {
    closeSync(directory)
  }
}

function translateOpenError(path: string, error: unknown): Error {
  if (error instanceof StorageFormatError || error instanceof StorageLockedError) return error
  const code = sqliteCode(error)
  if (code === SQLITE_BUSY || code === SQLITE_LOCKED) {
    return new StorageLockedError(`${path}: storage is in use by another process or storage`, {
      cause: error,
    })
  }
  if (code === SQLITE_NOTADB || code === SQLITE_CORRUPT) {
    return new StorageFormatError(`${path}: not a usable SQLite database: ${messageOf(error)}`, {
      cause: error,
    })
  }
  return error instanceof Error ? error : new Error(messageOf(error))
}

/** The primary SQLite result code of a `node:sqlite` error (extended codes carry it in the low byte). */
function sqliteCode(error: unknown): number | undefined {
  const code = (error as { errcode?: unknown } | null)?.errcode
  return typeof code === 'number' ? code & 0xff : undefined
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}
