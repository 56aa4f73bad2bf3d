import { type Kysely, type Migration, type MigrationProvider, Migrator, sql } from 'kysely'
import * as m0001 from '../../migrations/0001_foundation.ts'
import * as m0002 from '../../migrations/0002_api_keys.ts'
import * as m0003 from '../../migrations/0003_accounts_logos.ts'
import * as m0004 from '../../migrations/0004_two_factor.ts'
import * as m0005 from '../../migrations/0005_assist.ts'
import * as m0006 from '../../migrations/0006_sso.ts'
import * as m0007 from '../../migrations/0007_audit_indexes.ts'
import * as m0008 from '../../migrations/0008_rate_limits.ts'
import * as m0009 from '../../migrations/0009_user_authorizations.ts'
import * as m0010 from '../../migrations/0010_accounts_search_window.ts'
import * as m0011 from '../../migrations/0011_two_factor_pending_since.ts'
import * as m0012 from '../../migrations/0012_outbox_expiry.ts'
import * as m0013 from '../../migrations/0013_assigned_regions.ts'

// Static list: a bundle or a single executable cannot import migration files at run time.
const migrations: Record<string, Migration> = {
  '0001_foundation': m0001,
  '0002_api_keys': m0002,
  '0003_accounts_logos': m0003,
  '0004_two_factor': m0004,
  '0005_assist': m0005,
  '0006_sso': m0006,
  '0007_audit_indexes': m0007,
  '0008_rate_limits': m0008,
  '0009_user_authorizations': m0009,
  '0010_accounts_search_window': m0010,
  '0011_two_factor_pending_since': m0011,
  '0012_outbox_expiry': m0012,
  '0013_assigned_regions': m0013,
}

const provider: MigrationProvider = { getMigrations: async () => migrations }

export const latestMigration = Object.keys(migrations).sort().at(-1)!

/** Brings the database to the latest migration; throws with the failing migration's error. */
export async function migrateToLatest(db: Kysely<any>, opts: { pgSchema?: string } = {}): Promise<string[]> {
  // On PostgreSQL, name the schema of Kysely's own tables (the connection's current schema):
  // otherwise its existence check can see another schema's migration table and skip ours.
  const isPostgres = db.getExecutor().adapter.constructor.name === 'PostgresAdapter'
  const schema = isPostgres ? (opts.pgSchema ?? (await sql<{ s: string }>`select current_schema() as s`.execute(db)).rows[0]!.s) : undefined
  const migrator = new Migrator({ db, provider, ...(schema ? { migrationTableSchema: schema } : {}) })
  let { error, results } = await migrator.migrateToLatest()
  // Kysely looks for its tables across every schema; a schema or table dropped meanwhile by
  // another client (tests use one schema per file) fails that look-up ("schema … does not
  // exist", "column … does not exist"). An error outside every migration (none of the results
  // failed: the look-up or the lock) has changed nothing, so it is safe to try again.
  const outsideMigrations = () => error !== undefined && !results?.some((r) => r.status === 'Error')
  for (let attempt = 1; attempt <= 5 && outsideMigrations(); attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 50 * attempt))
    ;({ error, results } = await migrator.migrateToLatest())
  }
  if (error) {
    const failed = results?.find((r) => r.status === 'Error')
    throw new Error(`Migration ${failed?.migrationName ?? '?'} failed: ${String((error as Error).message ?? error)}`)
  }
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName)
}
