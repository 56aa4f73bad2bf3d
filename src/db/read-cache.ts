import type SQLite from 'better-sqlite3'

/**
 * Rows read from SQLite, kept until anything in the file may have changed: a row written
 * through this connection (`total_changes()`, which counts uncommitted and rolled-back
 * changes too) or a commit by any other connection or process (`data_version`). Reading
 * both takes two tiny statements, a fraction of a join; a write anywhere, by anyone, empties the
 * cache before the next read, so nothing is ever served stale (a signed-out or disabled user
 * is refused on the very next request, whichever process made the change).
 *
 * Without a SQLite connection (PostgreSQL, several portal processes) every read loads.
 * Values are shared: callers copy what they mutate.
 */
export class ReadCache<V> {
  readonly #sqlite: SQLite.Database | null
  readonly #dataVersion: SQLite.Statement | null
  readonly #totalChanges: SQLite.Statement | null
  readonly #max: number
  #entries = new Map<string, V>()
  #changes = -1
  #version = -1

  constructor(sqlite: SQLite.Database | null, max = 10_000) {
    this.#sqlite = sqlite
    // Two statements: the pragma_data_version table prepares a PRAGMA on every read.
    this.#dataVersion = sqlite ? sqlite.prepare('pragma data_version').pluck() : null
    this.#totalChanges = sqlite ? sqlite.prepare('select total_changes()').pluck() : null
    this.#max = max
  }

  /** The kept value for `key` if nothing may have changed since it was read; else undefined. */
  peek(key: string): V | undefined {
    // Inside another caller's transaction reading the stamp would start that transaction's
    // snapshot early; such moments just load.
    if (!this.#sqlite || this.#sqlite.inTransaction) return undefined
    const changes = this.#totalChanges!.get() as number
    const version = this.#dataVersion!.get() as number
    if (changes !== this.#changes || version !== this.#version) {
      this.#entries.clear()
      this.#changes = changes
      this.#version = version
    }
    return this.#entries.get(key)
  }

  async get(key: string, load: () => Promise<V>): Promise<V> {
    const known = this.peek(key)
    if (known !== undefined) return known
    if (!this.#sqlite || this.#sqlite.inTransaction) return load()
    const changes = this.#changes
    const version = this.#version
    const value = await load()
    // Kept under the stamp read before loading: a write during the load (which can wait behind
    // a transaction) moves the stamp, and the next peek empties the cache.
    if (this.#changes === changes && this.#version === version) {
      if (this.#entries.size >= this.#max) this.#entries.clear()
      this.#entries.set(key, value)
    }
    return value
  }
}
