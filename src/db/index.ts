import fs from 'node:fs'
import path from 'node:path'
import SQLite from 'better-sqlite3'
import { Kysely, PostgresDialect, SqliteDialect } from 'kysely'
import pg from 'pg'
import type { Database } from './schema.ts'
import { kyselyQueryLog } from '../ops/metrics.ts'
import { SQLITE_NATIVE_BINDING } from '../lib/paths.ts'
import { allowDirectReads } from './prepared.ts'

/** The SQLite page cache of the portal's connection, in KiB (the bench's baseline uses it too). */
export const SQLITE_CACHE_KIB = 128 * 1024

export type Dialect = 'sqlite' | 'postgres'

export interface DatabaseHandle {
  db: Kysely<Database>
  dialect: Dialect
  /** The SQLite file, for backups; undefined on PostgreSQL. */
  sqlite?: SQLite.Database
}

// int8 (bigint times, count(*)) as JavaScript numbers: every value we store fits in 2^53.
pg.types.setTypeParser(20, (v) => Number(v))

export interface OpenOptions {
  databaseUrl?: string
  dataDir: string
  /** PostgreSQL schema to use (tests give each file its own). */
  pgSchema?: string
  sqliteFile?: string
}

export function openDatabase(opts: OpenOptions): DatabaseHandle {
  if (opts.databaseUrl) {
    const pool = new pg.Pool({
      connectionString: opts.databaseUrl,
      max: 10,
      ...(opts.pgSchema ? { options: `-c search_path=${opts.pgSchema},public` } : {}),
    })
    return { db: new Kysely<Database>({ dialect: new PostgresDialect({ pool }), log: kyselyQueryLog() }), dialect: 'postgres' }
  }
  fs.mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 })
  const file = opts.sqliteFile ?? path.join(opts.dataDir, 'portal.sqlite')
  const sqlite = new SQLite(file, { nativeBinding: SQLITE_NATIVE_BINDING })
  sqlite.pragma('journal_mode = WAL')
  sqlite.pragma('synchronous = FULL')
  sqlite.pragma('foreign_keys = ON')
  sqlite.pragma('busy_timeout = 5000')
  // Up to 128 MiB of pages in memory (SQLite's default is 2 MiB, a few thousand accounts): a
  // search walking the accounts otherwise rereads them from the OS on every request.
  sqlite.pragma(`cache_size = -${SQLITE_CACHE_KIB}`)
  const statements = withStatementCache(sqlite)
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: statements }), log: kyselyQueryLog() })
  allowDirectReads(db, sqlite, (sql) => statements.prepare(sql))
  return { db, dialect: 'sqlite', sqlite }
}

/**
 * The SQLite file as Kysely sees it, keeping prepared statements by their SQL. Kysely prepares
 * every query afresh, and preparing the Accounts page's joins costs more than running them.
 * A statement that reads returns arrays, made into rows by rowMaker (better-sqlite3 builds a
 * row object a property at a time). A statement still busy in an iterator (a streamed export)
 * is never handed out twice.
 */
export function withStatementCache(sqlite: SQLite.Database, size = 500): Pick<SQLite.Database, 'prepare' | 'close'> {
  const cache = new Map<string, SQLite.Statement>()
  return {
    close: () => sqlite.close(),
    prepare(sql: string) {
      const cached = cache.get(sql)
      if (cached?.busy) return sqlite.prepare(sql)
      cache.delete(sql)
      const stmt = cached ?? readingRows(sqlite.prepare(sql))
      cache.set(sql, stmt) // last used goes last: the first key is the one to evict
      if (cache.size > size) cache.delete(cache.keys().next().value!)
      return stmt
    },
  } as Pick<SQLite.Database, 'prepare' | 'close'>
}

/** The statement as Kysely's driver and the cache use it (reader, busy, all, iterate, run), its rows made by rowMaker. */
function readingRows(statement: SQLite.Statement): SQLite.Statement {
  if (!statement.reader) return statement
  const makeRow = rowMaker(statement.columns().map((c) => c.name))
  statement.raw(true)
  const view = {
    reader: true,
    get busy() {
      return statement.busy
    },
    all: (...values: unknown[]) => (statement.all(...values) as unknown[][]).map(makeRow),
    iterate: function* (...values: unknown[]) {
      for (const row of statement.iterate(...values) as IterableIterator<unknown[]>) yield makeRow(row)
    },
    run: (...values: unknown[]) => statement.run(...values),
  }
  return view as unknown as SQLite.Statement
}

const rowMakers = new Map<string, (values: unknown[]) => Record<string, unknown>>()
/**
 * A function making a row object from a raw row's values: an object literal with the
 * columns' names, so that every row of a query shares one shape (fast to build and to read).
 * Later columns win over earlier ones of the same name, as in better-sqlite3's own rows.
 */
export function rowMaker(names: string[]): (values: unknown[]) => Record<string, unknown> {
  const key = JSON.stringify(names)
  let make = rowMakers.get(key)
  if (!make) {
    // The names are the query's own column names, written as JSON strings: never code.
    make = new Function('v', `return { ${names.map((name, i) => `${JSON.stringify(name)}: v[${i}]`).join(', ')} }`) as (values: unknown[]) => Record<string, unknown>
    rowMakers.set(key, make)
  }
  return make
}
