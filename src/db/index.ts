import fs from 'node:fs'
import path from 'node:path'
import SQLite from 'better-sqlite3'
import { CompiledQuery, Kysely, PostgresDialect, sql, SqliteDialect, SqliteDriver, type DatabaseConnection, type Driver, type QueryResult, type SqliteDialectConfig } from 'kysely'
import type { Database } from './schema.ts'
import type { DatabaseObserver } from './observer.ts'
import { SQLITE_NATIVE_BINDING } from '../lib/paths.ts'
import { BUSY_BUDGET_MS, BUSY_MESSAGE, CANNOT_SAVE_MESSAGE, SqliteHealth, isBusy, sqliteFault } from './faults.ts'
import { ServiceUnavailableError } from '../lib/errors.ts'

/** The SQLite page cache of the portal's connection, in KiB (the bench's baseline uses it too). */
export const SQLITE_CACHE_KIB = 128 * 1024

export type Dialect = 'sqlite' | 'postgres'

export interface DatabaseHandle {
  db: Kysely<Database>
  dialect: Dialect
  /** The SQLite file, for backups; undefined on PostgreSQL. */
  sqlite?: SQLite.Database
  /** Whether writes to the SQLite file get through (/readyz); undefined on PostgreSQL. */
  health?: SqliteHealth
}

const healthByDb = new WeakMap<Kysely<Database>, SqliteHealth>()
/** The write health of a database opened by openDatabase on SQLite; undefined on PostgreSQL. */
export function sqliteHealth(db: Kysely<Database>): SqliteHealth | undefined {
  return healthByDb.get(db)
}

/** Whether the database answers a trivial query (the readiness check on PostgreSQL). */
export async function databaseAnswers(db: Kysely<Database>): Promise<boolean> {
  try {
    await sql`select 1`.execute(db)
    return true
  } catch {
    return false
  }
}

export interface OpenOptions {
  databaseUrl?: string
  dataDir: string
  /** PostgreSQL schema to use (tests give each file its own). */
  pgSchema?: string
  sqliteFile?: string
  /** Told of every query's time and of write faults (the metrics). */
  observer?: DatabaseObserver
}

export function openDatabase(opts: OpenOptions): DatabaseHandle {
  if (opts.databaseUrl) {
    const { databaseUrl, pgSchema, observer } = opts
    // The PostgreSQL driver is loaded with the first query: a portal on SQLite never loads it.
    const pool = async () => {
      const { default: pg } = await import('pg')
      // int8 (bigint times, count(*)) as JavaScript numbers: every value we store fits in 2^53.
      pg.types.setTypeParser(20, (v) => Number(v))
      const pool = new pg.Pool({
        connectionString: databaseUrl,
        max: 10,
        // A request waits at most this long for a free connection, then answers 503.
        connectionTimeoutMillis: 10_000,
        ...(pgSchema ? { options: `-c search_path=${pgSchema},public` } : {}),
      })
      // An idle connection's error is the pool's 'error' event, which unheard would end the
      // process; pg drops that connection and the next query opens another.
      pool.on('error', (err) => observer?.idleConnectionLost?.(err))
      return pool
    }
    return { db: new Kysely<Database>({ dialect: new PostgresDialect({ pool }), log: opts.observer?.query }), dialect: 'postgres' }
  }
  fs.mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 })
  const file = opts.sqliteFile ?? path.join(opts.dataDir, 'portal.sqlite')
  refuseReadOnly(opts.dataDir, file)
  keepPrivate(file)
  const sqlite = new SQLite(file, { nativeBinding: SQLITE_NATIVE_BINDING })
  sqlite.pragma('journal_mode = WAL')
  sqlite.pragma('synchronous = FULL')
  sqlite.pragma('foreign_keys = ON')
  // Never wait for a lock on the event loop (better-sqlite3 is synchronous: a busy timeout
  // would stall every request, /healthz included). The driver below waits asynchronously.
  sqlite.pragma('busy_timeout = 0')
  // Up to 128 MiB of pages in memory (SQLite's default is 2 MiB, a few thousand accounts): a
  // search walking the accounts otherwise rereads them from the OS on every request.
  sqlite.pragma(`cache_size = -${SQLITE_CACHE_KIB}`)
  const health = new SqliteHealth(sqlite, opts.observer?.writeFault)
  const probed = health.probe()
  if (probed && !isBusy(probed)) {
    sqlite.close()
    throw new Error(`The database ${file} cannot be written (${probed}): the portal would fail every change. Make it writable for the portal's user, then start again.`)
  }
  const dialect = new FaultAwareSqliteDialect({ database: withStatementCache(sqlite) }, sqlite, health)
  const db = new Kysely<Database>({ dialect, log: opts.observer?.query })
  healthByDb.set(db, health)
  return { db, dialect: 'sqlite', sqlite, health }
}

/**
 * A data folder or database file the portal cannot write is refused at start-up: better
 * than serving pages while every change fails (SQLite would open the file read-only).
 */
function refuseReadOnly(dataDir: string, file: string): void {
  for (const target of [dataDir, file]) {
    try {
      fs.accessSync(target, fs.constants.W_OK)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOENT' && target === file) continue
      const what = target === dataDir ? 'data folder' : 'database file'
      throw new Error(`The ${what} ${target} is read-only (${code}): the portal cannot save anything there. Make it writable for the portal's user, then start again.`)
    }
  }
}

/**
 * The database file readable by the portal's user only (0600), whatever the umask and the
 * folder's mode: created so before SQLite opens it, and tightened if an older portal made it
 * 0644. SQLite gives the -wal and -shm files it creates the main file's mode.
 */
function keepPrivate(file: string): void {
  fs.closeSync(fs.openSync(file, 'a', 0o600))
  for (const f of [file, `${file}-wal`, `${file}-shm`]) {
    try {
      fs.chmodSync(f, 0o600)
    } catch (err) {
      // Absent, or owned by another user (then its owner decides): nothing to tighten.
      if (!['ENOENT', 'EPERM'].includes((err as NodeJS.ErrnoException).code ?? '')) throw err
    }
  }
}

/** Kysely's SQLite dialect with the fault-aware driver below. */
class FaultAwareSqliteDialect extends SqliteDialect {
  readonly #driver: () => Driver
  constructor(config: SqliteDialectConfig, sqlite: SQLite.Database, health: SqliteHealth) {
    super(config)
    this.#driver = () => new FaultAwareSqliteDriver(config, sqlite, health)
  }
  override createDriver(): Driver {
    return this.#driver()
  }
}

/**
 * Kysely's SQLite driver, changed in three ways:
 * - transactions begin IMMEDIATE: the write lock is taken at the start, so SQLITE_BUSY can
 *   come only at BEGIN (nothing done yet: safe to try again), never halfway through;
 * - a statement refused with SQLITE_BUSY that SQLite did not apply (a statement outside any
 *   transaction, the BEGIN, or a COMMIT that left the transaction open) is tried again
 *   after a pause, asynchronously, for up to BUSY_BUDGET_MS; then, like SQLITE_FULL,
 *   SQLITE_IOERR or SQLITE_READONLY, it fails as a ServiceUnavailableError (503);
 * - ROLLBACK only when a transaction is open: SQLite rolls back by itself on some errors
 *   (SQLITE_FULL), and Kysely's rollback would then throw "cannot rollback - no transaction
 *   is active" in place of the real error.
 * While a statement outside any transaction waits so, other queries use the connection (none
 * of it was done); while a COMMIT waits, they wait for it (Kysely's mutex, kept here).
 */
class FaultAwareSqliteDriver extends SqliteDriver {
  readonly #sqlite: SQLite.Database
  readonly #health: SqliteHealth
  readonly #mutex = new Mutex()
  #connection: DatabaseConnection | undefined
  constructor(config: SqliteDialectConfig, sqlite: SQLite.Database, health: SqliteHealth) {
    super(config)
    this.#sqlite = sqlite
    this.#health = health
  }
  override async acquireConnection(): Promise<DatabaseConnection> {
    if (!this.#connection) {
      const inner = await super.acquireConnection()
      await super.releaseConnection()
      this.#connection ??= faultAwareConnection(inner, this.#sqlite, this.#health, this.#mutex)
    }
    await this.#mutex.lock()
    return this.#connection
  }
  override async releaseConnection(): Promise<void> {
    this.#mutex.unlock()
  }
  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'))
  }
  override async rollbackTransaction(connection: DatabaseConnection): Promise<void> {
    if (this.#sqlite.inTransaction) await super.rollbackTransaction(connection)
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** The one connection's turn: one query (or transaction) at a time, as in Kysely's driver. */
class Mutex {
  #held: Promise<void> | undefined
  #release: (() => void) | undefined
  async lock(): Promise<void> {
    while (this.#held) await this.#held
    this.#held = new Promise((resolve) => (this.#release = resolve))
  }
  unlock(): void {
    const release = this.#release
    this.#held = this.#release = undefined
    release?.()
  }
}

function faultAwareConnection(inner: DatabaseConnection, sqlite: SQLite.Database, health: SqliteHealth, mutex: Mutex): DatabaseConnection {
  return {
    streamQuery: (query, chunkSize) => inner.streamQuery(query, chunkSize),
    async executeQuery<R>(query: CompiledQuery): Promise<QueryResult<R>> {
      const started = Date.now()
      for (let attempt = 0; ; attempt++) {
        const inTransaction = sqlite.inTransaction
        try {
          const result = await inner.executeQuery<R>(query)
          if (health.failing && (!inTransaction || /^\s*commit/i.test(query.sql)) && !/^\s*(select|begin)/i.test(query.sql)) health.writeSucceeded()
          return result
        } catch (err) {
          const code = sqliteFault(err)
          if (!code) throw err
          const busy = isBusy(code)
          const unapplied = !inTransaction || (/^\s*commit/i.test(query.sql) && sqlite.inTransaction)
          if (busy && unapplied && Date.now() - started < BUSY_BUDGET_MS) {
            const lettingGo = !sqlite.inTransaction
            if (lettingGo) mutex.unlock()
            await sleep(Math.min(100, 2 ** attempt))
            if (lettingGo) await mutex.lock()
            continue
          }
          health.writeFailed(code, err)
          throw busy ? new ServiceUnavailableError(BUSY_MESSAGE, 5, { cause: err }) : new ServiceUnavailableError(CANNOT_SAVE_MESSAGE, 60, { cause: err })
        }
      }
    },
  }
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
