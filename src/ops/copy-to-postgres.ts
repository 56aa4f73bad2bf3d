import fs from 'node:fs'
import path from 'node:path'
import { type Kysely, sql } from 'kysely'
import { openDatabase } from '../db/index.ts'
import { migrateToLatest } from '../db/migrations.ts'

// `mssp-portal copy-to-postgres --to postgres://...`: the move from the embedded SQLite
// database to PostgreSQL. The target must be empty (freshly migrated); every row keeps its
// id; identity sequences continue after the copied ids. Run it with the portal stopped.

/** Parents before children, so that foreign keys hold at every insert. */
export const COPY_ORDER = [
  'users', 'approved_domains', 'settings', 'logos', 'accounts', 'user_accounts', 'account_name_history',
  'saved_searches', 'api_keys', 'two_factor', 'recovery_codes', 'sessions', 'one_time_codes',
  'audit_events', 'outbox', 'sso_signing_keys',
] as const
const WITH_IDENTITY = ['users', 'logos', 'accounts'] as const

export async function copyToPostgres(dataDir: string, databaseUrl: string, out: (line: string) => void): Promise<Record<string, number>> {
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
    await db.transaction().execute(async (trx) => {
      for (const table of COPY_ORDER) {
        const rows = await src.selectFrom(table).selectAll().execute()
        // search_text and the other columns copy as they are; SQLite's FTS table is not needed.
        for (let i = 0; i < rows.length; i += 200) await trx.insertInto(table).values(rows.slice(i, i + 200)).execute()
        counts[table] = rows.length
        out(`  ${table.padEnd(22)} ${rows.length}`)
      }
      for (const table of WITH_IDENTITY) {
        await sql`select setval(pg_get_serial_sequence(${table}, 'id'), coalesce((select max(id) from ${sql.table(table)}), 0) + 1, false)`.execute(trx)
      }
    })
    return counts
  } finally {
    await source.db.destroy()
    await target.db.destroy()
  }
}
