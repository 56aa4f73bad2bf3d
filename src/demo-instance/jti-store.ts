/**
 * Remembers the `jti` of every accepted assertion and message until it could no longer be
 * accepted anyway (its `exp` plus the clock tolerance), so that each works once.
 *
 * The demo keeps them in memory: enough for one process. An instance with several
 * processes implements the same interface over a shared store, e.g. a table with a unique
 * key on `jti` (`INSERT ... ON CONFLICT DO NOTHING`, then "was a row inserted?") and a job
 * that deletes rows past `forget_after`.
 */
export interface JtiStore {
  /**
   * Records `jti` as used until `forgetAfterMs` (epoch milliseconds). Resolves true when it
   * was not used before (accept), false when it was (a replay). Must be atomic.
   */
  consume(jti: string, forgetAfterMs: number): Promise<boolean>
}

export class MemoryJtiStore implements JtiStore {
  readonly #used = new Map<string, number>()
  readonly #now: () => number
  #lastSweep = 0

  constructor(opts: { now?: () => number } = {}) {
    this.#now = opts.now ?? Date.now
  }

  async consume(jti: string, forgetAfterMs: number): Promise<boolean> {
    const now = this.#now()
    this.#sweep(now)
    const until = this.#used.get(jti)
    if (until !== undefined && until > now) return false
    this.#used.set(jti, forgetAfterMs)
    return true
  }

  /** How many jtis are remembered now (for tests and monitoring). */
  get size(): number {
    this.#sweep(this.#now(), true)
    return this.#used.size
  }

  #sweep(now: number, force = false) {
    if (!force && now - this.#lastSweep < 10_000) return
    this.#lastSweep = now
    for (const [jti, until] of this.#used) if (until <= now) this.#used.delete(jti)
  }
}
