import { copyFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { StorageFormatError } from '../../src/storage/errors.ts'
import { SqliteRaftStorage, STORAGE_FILE_NAME } from '../../src/storage/sqlite-storage.ts'
import { describeRaftStorageContract, entries, hardState, snapshot } from './raft-storage-contract.ts'

describeRaftStorageContract('SqliteRaftStorage', () => {
  const dir = mkdtempSync(join(tmpdir(), 'conclave-storage-'))
  const path = join(dir, 'raft.sqlite')
  return {
    open: () => new SqliteRaftStorage(path),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  }
})

describe('SqliteRaftStorage files', () => {
  let dir: string
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'conclave-storage-'))
  })
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true })
  })

  function expectRefused(path: string, message: RegExp): void {
    const before = readFileSync(path)
    expect(() => new SqliteRaftStorage(path)).toThrow(StorageFormatError)
    expect(() => new SqliteRaftStorage(path)).toThrow(message)
    expect(readFileSync(path)).toEqual(before)
  }

  /** A valid storage file with some state, closed. */
  function populated(path: string): void {
    const storage = new SqliteRaftStorage(path)
    storage.write({ hardState: hardState(2, 'a', 3), entries: [...entries(1, 4, 1), ...entries(5, 9, 2)] })
    storage.compact(snapshot(2, 1))
    storage.close()
  }

  it('a write of nothing but the commit index touches no file; the next write or close carries it', () => {
    const path = join(dir, 'raft.sqlite')
    const crashImage = (name: string): string => {
      // What a crash at this point leaves: the database and its WAL as they are on disk.
      const copy = join(dir, name)
      copyFileSync(path, copy)
      copyFileSync(`${path}-wal`, `${copy}-wal`)
      return copy
    }
    const storage = new SqliteRaftStorage(path)
    storage.write({ hardState: hardState(1, 'a', 0), entries: entries(1, 6, 1) })
    const walBytes = statSync(`${path}-wal`).size
    storage.write({ hardState: hardState(1, 'a', 4), entries: [] })
    expect(statSync(`${path}-wal`).size).toBe(walBytes)
    expect(storage.load().hardState).toEqual(hardState(1, 'a', 4))
    const beforeNextWrite = new SqliteRaftStorage(crashImage('crash1.sqlite'))
    expect(beforeNextWrite.load().hardState).toEqual(hardState(1, 'a', 0))
    beforeNextWrite.close()
    storage.write({ entries: entries(7, 7, 1) })
    const afterNextWrite = new SqliteRaftStorage(crashImage('crash2.sqlite'))
    expect(afterNextWrite.load().hardState).toEqual(hardState(1, 'a', 4))
    afterNextWrite.close()
    storage.write({ hardState: hardState(1, 'a', 7), entries: [] })
    storage.close()
    const reopened = new SqliteRaftStorage(path)
    expect(reopened.load().hardState).toEqual(hardState(1, 'a', 7))
    reopened.close()
  })

  it('open(dir) creates the directory and a private file inside it', () => {
    const dataDir = join(dir, 'a', 'b')
    const storage = SqliteRaftStorage.open(dataDir)
    storage.setMeta('peerKey', new Uint8Array([1]))
    storage.close()
    expect(statSync(join(dataDir, STORAGE_FILE_NAME)).mode & 0o777).toBe(0o600)
    expect(statSync(dataDir).mode & 0o777).toBe(0o700)
  })

  it('refuses a file that is not a SQLite database, and leaves it alone', () => {
    const path = join(dir, 'junk')
    writeFileSync(path, 'this is not a database, it only happens to sit where one was expected. '.repeat(100))
    expectRefused(path, /not a usable SQLite database/)
  })

  it("refuses another application's SQLite database, and leaves it alone", () => {
    const path = join(dir, 'other.sqlite')
    const other = new DatabaseSync(path)
    other.exec("CREATE TABLE entries (x); INSERT INTO entries VALUES ('theirs')")
    other.close()
    expectRefused(path, /not a conclave storage file/)
  })

  it('refuses a schema version it does not know', () => {
    const path = join(dir, 'newer.sqlite')
    populated(path)
    const raw = new DatabaseSync(path)
    raw.exec("UPDATE storage_info SET value = '2' WHERE key = 'schemaVersion'")
    raw.close()
    expectRefused(
      path,
      /schema version 2 is not supported.*newer conclave.*'conclave snapshot save'.*'conclave snapshot restore'/,
    )
  })

  it('refuses a schema version older than any it migrates, or not a version at all', () => {
    for (const [name, value] of [
      ['older', '0'],
      ['garbled', 'one'],
    ]) {
      const path = join(dir, `${name}.sqlite`)
      populated(path)
      const raw = new DatabaseSync(path)
      raw.exec(`UPDATE storage_info SET value = '${value}' WHERE key = 'schemaVersion'`)
      raw.close()
      expectRefused(path, new RegExp(`schema version ${value} is not supported.*migrates none older`))
    }
  })

  it('refuses a log with a hole in it', () => {
    const path = join(dir, 'hole.sqlite')
    populated(path)
    const raw = new DatabaseSync(path)
    raw.exec('DELETE FROM entries WHERE log_index = 6')
    raw.close()
    expectRefused(path, /not contiguous/)
  })

  it('refuses a log whose terms go backwards when loading', () => {
    const path = join(dir, 'terms.sqlite')
    populated(path)
    const raw = new DatabaseSync(path)
    raw.exec('UPDATE entries SET term = 1 WHERE log_index = 8')
    raw.close()
    const storage = new SqliteRaftStorage(path)
    expect(() => storage.load()).toThrow(StorageFormatError)
    storage.close()
  })

  it('refuses a file with damaged pages', () => {
    const path = join(dir, 'damaged.sqlite')
    const storage = new SqliteRaftStorage(path)
    for (let batch = 0; batch < 20; batch++) {
      storage.write({ hardState: hardState(1, '', 0), entries: entries(batch * 50 + 1, batch * 50 + 50, 1) })
    }
    storage.close() // checkpoints the WAL into the main file
    const bytes = readFileSync(path)
    const pageSize = bytes.readUInt16BE(16)
    expect(bytes.length).toBeGreaterThan(pageSize * 4)
    bytes.fill(0xa5, pageSize * 2 + 8, pageSize * 4) // two b-tree pages, keeping the header of the first
    writeFileSync(path, bytes)
    expect(() => {
      const reopened = new SqliteRaftStorage(path)
      try {
        reopened.load()
      } finally {
        reopened.close()
      }
    }).toThrow(StorageFormatError)
  })
})
