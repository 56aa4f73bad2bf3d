// ReadCache: a value is read again after any write to the SQLite file, by this connection or any
// other, and never kept from inside a transaction; without SQLite it always reads.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import SQLite from 'better-sqlite3'
import { ReadCache } from '../../src/db/read-cache.ts'

function openFile(t: { teardown(fn: () => void): void }) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mssp-read-cache-'))
  const file = path.join(dir, 'db.sqlite')
  const db = new SQLite(file)
  db.pragma('journal_mode = WAL')
  db.exec('create table items (id integer primary key, name text)')
  db.prepare('insert into items (id, name) values (1, ?)').run('first')
  const other = new SQLite(file)
  t.teardown(() => {
    db.close()
    other.close()
    fs.rmSync(dir, { recursive: true, force: true })
  })
  return { db, other }
}

/** The cache in front of a read of item 1's name, counting the reads that reach the file. */
function cachedName(db: SQLite.Database | null, read: () => string) {
  const cache = new ReadCache<string>(db)
  let reads = 0
  return {
    get: () => cache.get('1', async () => (reads++, read())),
    reads: () => reads,
  }
}

t.test('served from memory until this connection writes', async (t) => {
  const { db } = openFile(t)
  const name = cachedName(db, () => (db.prepare('select name from items where id = 1').get() as { name: string }).name)
  t.equal(await name.get(), 'first')
  t.equal(await name.get(), 'first')
  t.equal(name.reads(), 1, 'the second get did not read')
  db.prepare('update items set name = ? where id = 1').run('renamed')
  t.equal(await name.get(), 'renamed', 'a write through the same connection is seen at once')
  db.prepare('insert into items (name) values (?)').run('unrelated')
  await name.get()
  t.equal(name.reads(), 3, 'any write empties the cache, even of another row')
})

t.test('a commit by another connection (another process) is seen on the next get', async (t) => {
  const { db, other } = openFile(t)
  const name = cachedName(db, () => (db.prepare('select name from items where id = 1').get() as { name: string }).name)
  t.equal(await name.get(), 'first')
  other.prepare('update items set name = ? where id = 1').run('changed elsewhere')
  t.equal(await name.get(), 'changed elsewhere')
})

t.test('a write while the value loads is not kept past the next get', async (t) => {
  const { db, other } = openFile(t)
  let writeDuringLoad = true
  const cache = new ReadCache<string>(db)
  const load = async () => {
    const value = (db.prepare('select name from items where id = 1').get() as { name: string }).name
    if (writeDuringLoad) other.prepare('update items set name = ? where id = 1').run('written meanwhile')
    writeDuringLoad = false
    return value
  }
  t.equal(await cache.get('1', load), 'first', 'the load answers what it read')
  t.equal(await cache.get('1', load), 'written meanwhile', 'the next get reads again')
})

t.test('inside a transaction every get reads', async (t) => {
  const { db } = openFile(t)
  const name = cachedName(db, () => (db.prepare('select name from items where id = 1').get() as { name: string }).name)
  db.exec('begin')
  await name.get()
  await name.get()
  db.exec('rollback')
  t.equal(name.reads(), 2)
})

t.test('without a SQLite connection (PostgreSQL) every get reads', async (t) => {
  const name = cachedName(null, () => 'value')
  await name.get()
  await name.get()
  t.equal(name.reads(), 2)
})
