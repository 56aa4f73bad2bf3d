// Frozen: never edit a migration that has shipped; add a new one.
import { type Kysely, sql } from 'kysely'

// Rate-limit counters shared by every portal process (src/ops/rate-limit-store.ts): one row
// per limited key, its hits in the current window and when that window ends.
export async function up(db: Kysely<any>): Promise<void> {
  const isPostgres = db.getExecutor().adapter.constructor.name === 'PostgresAdapter'
  let table = db.schema.createTable('rate_limits')
  // PostgreSQL: UNLOGGED, so counting a request costs no WAL write and no fsync. After a crash
  // of the database server the table comes back empty: every client starts a new window.
  if (isPostgres) table = table.modifyFront(sql`unlogged`)
  await table
    .addColumn('key', 'text', (c) => c.primaryKey())
    .addColumn('hits', 'integer', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .execute()
  // The clean-up deletes expired rows by this.
  await db.schema.createIndex('rate_limits_expires_at').on('rate_limits').column('expires_at').execute()
}

export async function down(): Promise<void> {
  throw new Error('migrations are forward only')
}
