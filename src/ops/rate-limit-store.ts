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
      const result = await countHit(kdb, this.#key(key), now, timeWindow, max, this.#continueExceeding)
      cleanup(now)
      return result
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

/** One hit for a key: a single upsert, atomic on SQLite and PostgreSQL alike. */
async function countHit(kdb: Kysely<Tables>, key: string, now: number, timeWindow: number, max: number, continueExceeding: boolean): Promise<{ current: number; ttl: number }> {
  const expired = sql<boolean>`rate_limits.expires_at <= ${now}`
  // Every right-hand side reads the row as it was before this update.
  const expiresAt = continueExceeding
    ? sql<number>`case when ${expired} or rate_limits.hits + 1 > ${max} then ${now + timeWindow} else rate_limits.expires_at end`
    : sql<number>`case when ${expired} then ${now + timeWindow} else rate_limits.expires_at end`
  const row = await kdb
    .insertInto('rate_limits')
    .values({ key, hits: 1, expires_at: now + timeWindow })
    .onConflict((oc) =>
      oc.column('key').doUpdateSet({
        hits: sql<number>`case when ${expired} then 1 else rate_limits.hits + 1 end`,
        expires_at: expiresAt,
      }),
    )
    .returning(['hits', 'expires_at'])
    .executeTakeFirstOrThrow()
  return { current: Number(row.hits), ttl: Math.max(0, Number(row.expires_at) - now) }
}

/**
 * Counts failures (e.g. wrong API keys) per key in fixed windows, so that a caller can be
 * refused before the work a failure costs. The in-memory counter serves one process; the
 * database one is shared by every process using that database.
 */
export interface FailureCounter {
  /** The highest count among `keys` in their current windows, and the ms until that window ends. */
  peak(keys: string[]): Promise<{ count: number; ttl: number }>
  /** Counts one failure for each key. */
  add(keys: string[]): Promise<void>
}

export function memoryFailureCounter(windowMs: number, maxKeys = 50_000): FailureCounter {
  const windows = new Map<string, { count: number; endsAt: number }>()
  return {
    async peak(keys) {
      const now = Date.now()
      let peak = { count: 0, ttl: 0 }
      for (const key of keys) {
        const w = windows.get(key)
        if (w && w.endsAt > now && w.count > peak.count) peak = { count: w.count, ttl: w.endsAt - now }
      }
      return peak
    },
    async add(keys) {
      const now = Date.now()
      for (const key of keys) {
        const w = windows.get(key)
        if (w && w.endsAt > now) w.count += 1
        else {
          windows.delete(key)
          windows.set(key, { count: 1, endsAt: now + windowMs })
        }
      }
      // Bounded: drop ended windows, then the oldest (a Map iterates in insertion order), down
      // to 90% so that the sweep runs once per many additions rather than on each.
      if (windows.size > maxKeys) {
        for (const [key, w] of windows) if (w.endsAt <= now) windows.delete(key)
        for (const key of windows.keys()) {
          if (windows.size <= maxKeys * 0.9) break
          windows.delete(key)
        }
      }
    },
  }
}

export function databaseFailureCounter(db: Kysely<any>, namespace: string, windowMs: number): FailureCounter {
  const kdb = db as unknown as Kysely<Tables>
  const full = (key: string) => `${namespace}|${key}`.slice(0, MAX_KEY_LENGTH)
  return {
    async peak(keys) {
      const now = Date.now()
      const rows = await kdb.selectFrom('rate_limits').select(['hits', 'expires_at']).where('key', 'in', keys.map(full)).where('expires_at', '>', now).execute()
      let peak = { count: 0, ttl: 0 }
      for (const row of rows) if (Number(row.hits) > peak.count) peak = { count: Number(row.hits), ttl: Number(row.expires_at) - now }
      return peak
    },
    async add(keys) {
      const now = Date.now()
      for (const key of keys) await countHit(kdb, full(key), now, windowMs, Number.MAX_SAFE_INTEGER, false)
    },
  }
}
