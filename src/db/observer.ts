import type { Logger } from 'kysely'

/**
 * What the data layer reports to whoever watches it: app.ts passes one wired to the
 * metrics (src/ops/metrics.ts), so that db/ knows nothing of them.
 */
export interface DatabaseObserver {
  /** Every query and its time, as Kysely's `log` option reports it. */
  query?: Logger
  /** A write refused by a database fault (its code), or writes getting through again (null). */
  writeFault?: (code: string | null) => void
  /** A PostgreSQL connection that failed while idle in the pool (the server restarting, the connection killed). */
  idleConnectionLost?: (err: Error) => void
}
