import crypto from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { sql } from 'kysely'

/**
 * What a refused request may still change: the audit log (refusals are audited), throttle
 * counters, and the bookkeeping of sign-in attempts and key/session use.
 */
const VOLATILE: Record<string, readonly string[] | 'all'> = {
  audit_events: 'all',
  rate_limits: 'all',
  sessions: ['last_seen_at', 'code_attempts'],
  api_keys: ['last_used_at'],
  users: ['failed_login_count', 'failed_login_total', 'locked_until', 'last_failed_login_at', 'last_login_attempt_at'],
  one_time_codes: ['attempts'],
}

export interface Snapshot {
  counts: Record<string, number>
  hashes: Record<string, string>
  /** `table.column` of stored text holding a NUL, a lone surrogate or U+FFFD (invalid UTF-8 read back). */
  badText: string[]
}

const BAD_TEXT = /\u0000|\ufffd|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/

const json = (value: unknown) => JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? v.toString() : v))

/** The app's own tables (on PostgreSQL its schema only: other test files' schemas come and go). */
async function tableNames(app: FastifyInstance): Promise<string[]> {
  const query = app.dialect === 'postgres'
    ? sql<{ name: string }>`select table_name as name from information_schema.tables where table_schema = current_schema() and table_type = 'BASE TABLE'`
    : sql<{ name: string }>`select name from sqlite_master where type = 'table' and name not like 'sqlite_%'`
  return (await query.execute(app.db)).rows.map((r) => r.name)
}

/** Row counts and a hash of every row of every table (Kysely's introspection: both dialects). */
export async function snapshot(app: FastifyInstance): Promise<Snapshot> {
  const tables = (await tableNames(app)).filter((name) => VOLATILE[name] !== 'all').sort()
  const counts: Record<string, number> = {}
  const hashes: Record<string, string> = {}
  const badText = new Set<string>()
  for (const table of tables) {
    const skip = new Set((VOLATILE[table] as readonly string[] | undefined) ?? [])
    const rows = (await app.db.selectFrom(table as never).selectAll().execute()) as Record<string, unknown>[]
    const lines = rows.map((row) => json(Object.keys(row).sort().filter((k) => !skip.has(k)).map((k) => [k, row[k] instanceof Uint8Array ? crypto.createHash('sha256').update(row[k] as Uint8Array).digest('hex') : row[k]]))).sort()
    for (const row of rows) {
      for (const [k, v] of Object.entries(row)) if (typeof v === 'string' && BAD_TEXT.test(v)) badText.add(`${table}.${k}`)
    }
    counts[table] = rows.length
    hashes[table] = crypto.createHash('sha256').update(lines.join('\n')).digest('hex').slice(0, 16)
  }
  return { counts, hashes, badText: [...badText].sort() }
}

/** The tables whose rows differ, as "table (count a → b)" or "table (rows changed)". */
export function changedTables(before: Snapshot, after: Snapshot): string[] {
  const out: string[] = []
  for (const table of new Set([...Object.keys(before.hashes), ...Object.keys(after.hashes)])) {
    if (before.hashes[table] === after.hashes[table]) continue
    out.push(before.counts[table] === after.counts[table] ? `${table} (rows changed)` : `${table} (${before.counts[table] ?? 0} → ${after.counts[table] ?? 0} rows)`)
  }
  return out
}
