import fs from 'node:fs'
import path from 'node:path'
import { type Kysely, type Transaction, sql } from 'kysely'
import type SQLite from 'better-sqlite3'
import { openDatabase } from '../db/index.ts'
import { migrateToLatest } from '../db/migrations.ts'

// `mssp-portal copy-to-postgres --to postgres://...`: the move from the embedded SQLite
// database to PostgreSQL. The target must be empty (freshly migrated); every row keeps its
// id; identity sequences continue after the copied ids. Run it with the portal stopped.
//
// SQLite stores text PostgreSQL cannot hold: a NUL character, or bytes that are not UTF-8
// (JavaScript's lone surrogates are written so). Such a row is not copied; nor is a row that
// refers to one (its foreign key). Each is named (table, key, why) and everything else is
// copied, in one transaction.

/** Parents before children, so that foreign keys hold at every insert. */
export const COPY_ORDER = [
  'users', 'approved_domains', 'settings', 'logos', 'accounts', 'user_accounts', 'account_name_history',
  'saved_searches', 'api_keys', 'two_factor', 'recovery_codes', 'sessions', 'one_time_codes',
  'audit_events', 'outbox', 'sso_signing_keys',
] as const
const WITH_IDENTITY = ['users', 'logos', 'accounts'] as const
const BATCH = 200

/** A row left behind: its table, its primary key ("id=12") and why. */
export interface RowNotCopied {
  table: string
  key: string
  reason: string
}

export interface CopyReport {
  /** Rows copied, per table. */
  counts: Record<string, number>
  notCopied: RowNotCopied[]
}

type Row = Record<string, unknown>

// PostgreSQL's refusals that concern one row (the rest can still be copied): a character it
// cannot store, and a foreign key to a row that was not copied. Anything else fails the copy.
const ROW_ERRORS = new Set(['22021', '22P05', '23503'])

export async function copyToPostgres(dataDir: string, databaseUrl: string, out: (line: string) => void): Promise<CopyReport> {
  const sqliteFile = path.join(dataDir, 'portal.sqlite')
  if (!fs.existsSync(sqliteFile)) throw new Error(`No SQLite database at ${sqliteFile}.`)
  const source = openDatabase({ dataDir })
  const target = openDatabase({ dataDir, databaseUrl })
  const db = target.db as unknown as Kysely<any>
  const src = source.db as unknown as Kysely<any>
  try {
    await migrateToLatest(source.db)
    await migrateToLatest(target.db)
    const existing = await db.selectFrom('users').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()
    if (Number(existing.n) > 0) throw new Error('The PostgreSQL database already has users: copy only into an empty database.')
    const counts: Record<string, number> = {}
    const notCopied: RowNotCopied[] = []
    await db.transaction().execute(async (trx) => {
      for (const table of COPY_ORDER) {
        const rows = (await src.selectFrom(table).selectAll().execute()) as Row[]
        const key = primaryKeyColumns(source.sqlite!, table)
        const keyOf = (row: Row) => key.map((c) => `${c}=${String(row[c])}`).join(', ')
        const movable: Row[] = []
        for (const row of rows) {
          const reason = unmovableText(source.sqlite!, table, key, row)
          if (reason) notCopied.push({ table, key: keyOf(row), reason })
          else movable.push(row)
        }
        // search_text and the other columns copy as they are; SQLite's FTS table is not needed.
        counts[table] = await insertRows(trx, table, movable, (row, reason) => notCopied.push({ table, key: keyOf(row), reason }))
        const skipped = rows.length - counts[table]!
        out(`  ${table.padEnd(22)} ${counts[table]}${skipped ? ` (${skipped} not copied)` : ''}`)
      }
      for (const table of WITH_IDENTITY) {
        await sql`select setval(pg_get_serial_sequence(${table}, 'id'), coalesce((select max(id) from ${sql.table(table)}), 0) + 1, false)`.execute(trx)
      }
    })
    if (notCopied.length) {
      out(`${notCopied.length} ${notCopied.length === 1 ? 'row was' : 'rows were'} not copied (everything else was):`)
      for (const r of notCopied) out(`  ${r.table} ${r.key}: ${r.reason}`)
    }
    return { counts, notCopied }
  } finally {
    await source.db.destroy()
    await target.db.destroy()
  }
}

/** A table's primary key columns as SQLite declares them: rows are named by them ("id=12", "user_id=3, account_id=9"). */
function primaryKeyColumns(sqlite: SQLite.Database, table: string): string[] {
  return (sqlite.pragma(`table_info("${table}")`) as Array<{ name: string; pk: number }>).filter((c) => c.pk > 0).sort((a, b) => a.pk - b.pk).map((c) => c.name)
}

/**
 * Why a row's text cannot move, or null. A NUL shows in the string; bytes that are not UTF-8
 * are read by SQLite's driver as U+FFFD, so a row holding U+FFFD has that column's stored
 * bytes checked.
 */
function unmovableText(sqlite: SQLite.Database, table: string, key: string[], row: Row): string | null {
  for (const [column, value] of Object.entries(row)) {
    if (typeof value !== 'string') continue
    if (value.includes('\u0000')) return `${column} holds a NUL character, which PostgreSQL cannot store`
    if (value.includes('\uFFFD') && !storedAsUtf8(sqlite, table, key, column, row)) return `${column} holds bytes that are not UTF-8 (such as a lone surrogate), which PostgreSQL cannot store`
  }
  return null
}

const utf8 = new TextDecoder('utf-8', { fatal: true })
function storedAsUtf8(sqlite: SQLite.Database, table: string, key: string[], column: string, row: Row): boolean {
  if (key.length === 0) return false
  const stored = sqlite
    .prepare(`select cast("${column}" as blob) from "${table}" where ${key.map((c) => `"${c}" = ?`).join(' and ')}`)
    .pluck()
    .get(...key.map((c) => row[c])) as Buffer | undefined
  if (!stored) return false
  try {
    utf8.decode(stored)
    return true
  } catch {
    return false
  }
}

/**
 * Inserts rows in batches, each under a savepoint; a batch PostgreSQL refuses for one of its
 * rows (ROW_ERRORS) is inserted again row by row, and each refused row is reported.
 */
async function insertRows(trx: Transaction<any>, table: string, rows: Row[], refused: (row: Row, reason: string) => void): Promise<number> {
  let copied = 0
  for (let i = 0; i < rows.length; i += BATCH) {
    const batch = rows.slice(i, i + BATCH)
    if ((await tryInsert(trx, table, batch)) === null) {
      copied += batch.length
      continue
    }
    for (const row of batch) {
      const reason = await tryInsert(trx, table, [row])
      if (reason === null) copied += 1
      else refused(row, reason)
    }
  }
  return copied
}

async function tryInsert(trx: Transaction<any>, table: string, rows: Row[]): Promise<string | null> {
  await sql`savepoint copy_rows`.execute(trx)
  try {
    await trx.insertInto(table).values(rows).execute()
    await sql`release savepoint copy_rows`.execute(trx)
    return null
  } catch (err) {
    const code = (err as { code?: string }).code
    if (!code || !ROW_ERRORS.has(code)) throw err
    await sql`rollback to savepoint copy_rows`.execute(trx)
    return code === '23503' ? `refers to a row that was not copied (${(err as Error).message.replace(/^insert or update on table "[^"]+" violates /, '')})` : (err as Error).message
  }
}
