import type { FastifyRateLimitStoreCtor } from '@fastify/rate-limit'
import { type Kysely, sql } from 'kysely'

// A store for @fastify/rate-limit that keeps its counters in the portal's database
// (migration 0008_rate_limits), so that a limit holds across every portal process sharing
// that database. One row per limited key: its hits in the current window and the window's
// end. Counting a request is one upsert (INSERT ... ON CONFLICT DO UPDATE ... RETURNING),
// atomic on SQLite and PostgreSQL alike; expired rows are deleted now and then.
//
// Windows are fixed, starting at a key's first request (as @fastify/rate-limit's own
// in-memory store does), and end at the same instant for every process.

export interface RateLimitsTable {
  key: string
  hits: number
  /** Epoch milliseconds: the end of the current window. */
  expires_at: number
}

interface Tables {
  rate_limits: RateLimitsTable
}

export interface DatabaseRateLimitStoreOptions {
  /** Keeps the counters of several limiters apart (e.g. 'api', 'sign-in'). */
  namespace?: string
  /** How often (at most, per process) expired rows are deleted. Default one minute. */
  cleanupEveryMs?: number
  /** Called with a failed clean-up's error (the clean-up never fails a request). */
  onCleanupError?: (err: unknown) => void
}

type Callback = (error: Error | null, result?: { current: number; ttl: number }) => void

/** What @fastify/rate-limit passes to a store's constructor and to `child()` (the parts used here). */
interface LimiterParams {
  timeWindow?: number | ((...args: never[]) => unknown)
  continueExceeding?: boolean
  exponentialBackoff?: boolean
  routeInfo?: { method?: string | string[]; url?: string }
}

/** The longest key stored as is; longer keys are shortened (they come from request data). */
const MAX_KEY_LENGTH = 400

/**
 * A store class for @fastify/rate-limit's `store` option, bound to one Kysely instance:
 *
 *   await scope.register(rateLimit, { ..., store: databaseRateLimitStore(app.db, { namespace: 'api' }) })
 *
 * Routes with their own `config.rateLimit` get their own counters (as with the built-in
 * store); `exponentialBackoff` is refused (not supported here), `continueExceeding` works.
 */
export function databaseRateLimitStore(db: Kysely<any>, options: DatabaseRateLimitStoreOptions = {}): FastifyRateLimitStoreCtor {
  const kdb = db as unknown as Kysely<Tables>
  const namespace = options.namespace ?? 'default'
  const cleanupEveryMs = options.cleanupEveryMs ?? 60_000
  let lastCleanup = 0

  function cleanup(now: number): void {
    if (now - lastCleanup < cleanupEveryMs) return
    lastCleanup = now
    kdb
      .deleteFrom('rate_limits')
      .where('expires_at', '<=', now)
      .execute()
      .catch((err: unknown) => options.onCleanupError?.(err))
  }

  class DatabaseRateLimitStore {
    readonly #prefix: string
    readonly #continueExceeding: boolean

    constructor(params: LimiterParams = {}, prefix = `${namespace}|`) {
      if (params.exponentialBackoff) throw new Error('The database rate-limit store does not support exponentialBackoff.')
      this.#prefix = prefix
      this.#continueExceeding = Boolean(params.continueExceeding)
    }

    #key(key: string): string {
      const full = `${this.#prefix}${key}`
      return full.length <= MAX_KEY_LENGTH ? full : full.slice(0, MAX_KEY_LENGTH)
    }

    incr(key: string, callback: Callback, timeWindow: number, max: number): void {
      this.hit(key, timeWindow, max).then(
        (result) => callback(null, result),
        (err: unknown) => callback(err instanceof Error ? err : new Error(String(err))),
      )
    }

    /** Counts one request for `key`; resolves with the count in the window and the ms left. */
    async hit(key: string, timeWindow: number, max: number): Promise<{ current: number; ttl: number }> {
      const now = Date.now()
      const expired = sql<boolean>`rate_limits.expires_at <= ${now}`
      // Every right-hand side reads the row as it was before this update.
      const expiresAt = this.#continueExceeding
        ? sql<number>`case when ${expired} or rate_limits.hits + 1 > ${max} then ${now + timeWindow} else rate_limits.expires_at end`
        : sql<number>`case when ${expired} then ${now + timeWindow} else rate_limits.expires_at end`
      const row = await kdb
        .insertInto('rate_limits')
        .values({ key: this.#key(key), hits: 1, expires_at: now + timeWindow })
        .onConflict((oc) =>
          oc.column('key').doUpdateSet({
            hits: sql<number>`case when ${expired} then 1 else rate_limits.hits + 1 end`,
            expires_at: expiresAt,
          }),
        )
        .returning(['hits', 'expires_at'])
        .executeTakeFirstOrThrow()
      cleanup(now)
      return { current: Number(row.hits), ttl: Math.max(0, Number(row.expires_at) - now) }
    }

    /** The count without counting (`createRateLimit(...)(request, { increment: false })`). */
    read(key: string, callback: Callback): void {
      const now = Date.now()
      kdb
        .selectFrom('rate_limits')
        .select(['hits', 'expires_at'])
        .where('key', '=', this.#key(key))
        .executeTakeFirst()
        .then(
          (row) =>
            callback(null, row && Number(row.expires_at) > now ? { current: Number(row.hits), ttl: Number(row.expires_at) - now } : { current: 0, ttl: 0 }),
          (err: unknown) => callback(err instanceof Error ? err : new Error(String(err))),
        )
    }

    /** A route with its own `config.rateLimit`: its own counters, named by method and URL. */
    child(routeOptions: LimiterParams): DatabaseRateLimitStore {
      const info = routeOptions.routeInfo ?? {}
      const method = Array.isArray(info.method) ? info.method.join(',') : (info.method ?? '')
      const route = info.url ? `${method} ${info.url}` : 'manual'
      return new DatabaseRateLimitStore(routeOptions, `${namespace}|${route}|`)
    }
  }

  return DatabaseRateLimitStore as unknown as FastifyRateLimitStoreCtor
}
