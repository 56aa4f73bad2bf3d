// Frozen: never edit a migration that has shipped; add a new one.
import { type Kysely, sql } from 'kysely'

function isPostgres(db: Kysely<any>): boolean {
  return db.getExecutor().adapter.constructor.name === 'PostgresAdapter'
}

// The Audit Log page and API at millions of events: every filter they offer walks an index
// in (created_at, id) order, so a page of 50 newest-first rows never sorts or scans the table.
export async function up(db: Kysely<any>): Promise<void> {
  // Keyset paging orders by (created_at, id): one index serves it (and every created_at use).
  await db.schema.createIndex('audit_events_created_id').on('audit_events').columns(['created_at', 'id']).execute()
  await db.schema.dropIndex('audit_events_created').execute()

  // Filters by equality, each followed by the paging order.
  await db.schema.createIndex('audit_events_action').on('audit_events').columns(['action', 'created_at', 'id']).execute()
  await db.schema.createIndex('audit_events_outcome').on('audit_events').columns(['outcome', 'created_at', 'id']).execute()
  await db.schema.createIndex('audit_events_actor_name').on('audit_events').columns(['actor_name', 'created_at', 'id']).execute()
  await db.schema.createIndex('audit_events_target_id').on('audit_events').columns(['target_id', 'created_at', 'id']).execute()
  // The actor filter of the API, and the foreign keys' ON DELETE SET NULL when a user is deleted.
  await db.schema.createIndex('audit_events_actor_user').on('audit_events').columns(['actor_user_id', 'created_at', 'id']).execute()
  await db.schema.createIndex('audit_events_assisting_user').on('audit_events').column('assisting_user_id').execute()
  // The page's Target box: part of a name. On PostgreSQL a trigram index (pg_trgm, which
  // 0003 installs) finds a rare name among millions; SQLite reads the newest rows.
  if (isPostgres(db)) {
    await sql`create index audit_events_target_name_trgm on audit_events using gin (lower(target_name) public.gin_trgm_ops)`.execute(db)
  }
}

export async function down(): Promise<void> {
  throw new Error('migrations are forward only')
}
