import type SQLite from 'better-sqlite3'
import { ServiceUnavailableError } from '../lib/errors.ts'

// Faults of the database itself, as opposed to errors of a query: a lock held too long by
// another connection, a full disk, a file or folder that cannot be written. They answer
// 503 with Retry-After (never 500), are logged once per burst, and make /readyz say 503
// while they last (docs/operations.md, "When the database cannot save").

/** How long a statement may wait, in total, for another connection's lock (asynchronously). */
export const BUSY_BUDGET_MS = 5_000
/** After a full disk or an I/O error, /readyz says 503 this long unless a write succeeds first. */
export const STORAGE_FAULT_WINDOW_MS = 30_000
/** While a fault lasts, it is logged again at most this often (with the count of failures). */
const RELOG_MS = 60_000

export const BUSY_MESSAGE = 'The portal is busy and could not save your change. Please try again in a few seconds.'
export const CANNOT_SAVE_MESSAGE = 'The portal cannot save changes right now. Please try again in a few minutes.'

/** SQLite's code of a database fault (SQLITE_BUSY*, SQLITE_FULL, SQLITE_IOERR*, SQLITE_READONLY*, SQLITE_CANTOPEN), else null. */
export function sqliteFault(err: unknown): string | null {
  const code = (err as { code?: unknown } | null)?.code
  if (typeof code !== 'string' || !(err instanceof Error) || err.name !== 'SqliteError') return null
  return /^SQLITE_(BUSY|FULL|IOERR|READONLY|CANTOPEN)/.test(code) ? code : null
}

export const isBusy = (code: string) => code.startsWith('SQLITE_BUSY')

/**
 * PostgreSQL faults a client can only wait out: the server shutting down or refusing
 * connections (57P0x, 08xxx, 53300), a statement or lock timeout (57014, 55P03), a full disk
 * (53100), no free connection in the pool in time, or no connection at all.
 */
export function postgresFault(err: unknown): string | null {
  const code = (err as { code?: unknown } | null)?.code
  // pg-pool's own errors carry no code: no free connection in time, or the server gone.
  if (err instanceof Error && /^(timeout exceeded when trying to connect|Connection terminated)/.test(err.message)) return 'pool'
  if (typeof code !== 'string') return null
  if (/^(57P0\d|08...|53[123]00|57014|55P03)$/.test(code)) return code
  if (['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND'].includes(code)) return code
  return null
}

/** A database fault as the 503 the client gets (with Retry-After), else null. */
export function unavailableError(err: unknown): ServiceUnavailableError | null {
  if (err instanceof ServiceUnavailableError) return err
  const code = postgresFault(err)
  if (!code) return null
  return new ServiceUnavailableError(code === '57014' || code === '55P03' ? BUSY_MESSAGE : CANNOT_SAVE_MESSAGE, 10, { cause: err })
}

interface Logger {
  error(obj: object, msg: string): void
  warn(obj: object, msg: string): void
}

const stderrLogger: Logger = {
  error: (obj, msg) => process.stderr.write(`${msg} ${JSON.stringify(obj, (k, v) => (k === 'err' && v instanceof Error ? `${v.name}: ${v.message}` : v))}\n`),
  warn: (obj, msg) => process.stderr.write(`${msg} ${JSON.stringify(obj)}\n`),
}

interface Failing {
  code: string
  since: number
  last: number
  count: number
  loggedAt: number
}

/**
 * Whether writes to one SQLite file get through: fed by every statement the driver runs
 * (faultAwareConnection) and by a probe that takes the write lock without waiting.
 */
export class SqliteHealth {
  #failing: Failing | null = null
  log: Logger = stderrLogger
  readonly #sqlite: SQLite.Database
  readonly #observe: ((code: string | null) => void) | undefined

  /** `observe` hears of each failed write (its code) and of the end of a burst (null). */
  constructor(sqlite: SQLite.Database, observe?: (code: string | null) => void) {
    this.#sqlite = sqlite
    this.#observe = observe
  }

  get failing(): boolean {
    return this.#failing !== null
  }

  /** A write failed with `code`: counted, and logged unless this burst was logged lately. */
  writeFailed(code: string, err: unknown): void {
    const now = Date.now()
    this.#observe?.(code)
    const failing = this.#failing
    if (!failing) {
      this.#failing = { code, since: now, last: now, count: 1, loggedAt: now }
      this.log.error({ err, code }, `database write failed: ${code}; further failures are counted, not logged, until a write succeeds`)
      return
    }
    failing.count++
    failing.last = now
    if (failing.code !== code || now - failing.loggedAt >= RELOG_MS) {
      this.log.error({ err, code, failures: failing.count, sinceMs: now - failing.since }, `database writes still failing: ${code}`)
      failing.code = code
      failing.loggedAt = now
    }
  }

  /** A write got through: the burst, if any, is over. */
  writeSucceeded(): void {
    const failing = this.#failing
    if (!failing) return
    this.#failing = null
    this.#observe?.(null)
    this.log.warn({ code: failing.code, failures: failing.count, durationMs: Date.now() - failing.since }, 'database writes work again')
  }

  /**
   * Takes the write lock and dirties a page without waiting, then rolls back: nothing is
   * written. Returns the fault code (SQLITE_BUSY while another connection holds the lock,
   * SQLITE_READONLY for a file that cannot be written), or null. Skipped (null) while this
   * connection is inside a transaction or a streamed read: it holds the lock then.
   */
  probe(): string | null {
    const sqlite = this.#sqlite
    if (!sqlite.open || sqlite.inTransaction) return null
    try {
      sqlite.exec('begin immediate')
      try {
        const version = sqlite.pragma('user_version', { simple: true }) as number
        sqlite.pragma(`user_version = ${Number(version)}`)
      } finally {
        if (sqlite.inTransaction) sqlite.exec('rollback')
      }
      return null
    } catch (err) {
      return sqliteFault(err) ?? (err instanceof TypeError ? null : 'SQLITE_ERROR')
    }
  }

  /** Why writes cannot get through now (for /readyz), or null when they can. */
  problem(): string | null {
    const probed = this.probe()
    if (probed) return probed
    const failing = this.#failing
    if (!failing) return null
    // The probe took the lock and could write a page: a lock or a read-only file is over.
    if (isBusy(failing.code) || failing.code.startsWith('SQLITE_READONLY')) {
      this.writeSucceeded()
      return null
    }
    // A full disk shows only when a commit needs space: trust the last real write for a while.
    return Date.now() - failing.last < STORAGE_FAULT_WINDOW_MS ? failing.code : null
  }
}
