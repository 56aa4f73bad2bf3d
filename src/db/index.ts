import fs from 'node:fs'
import path from 'node:path'
import SQLite from 'better-sqlite3'
import { Kysely, PostgresDialect, SqliteDialect } from 'kysely'
import pg from 'pg'
import type { Database } from './schema.ts'
import { kyselyQueryLog } from '../ops/metrics.ts'
import { SQLITE_NATIVE_BINDING } from '../lib/paths.ts'

export type Dialect = 'sqlite' | 'postgres'

export interface DatabaseHandle {
  db: Kysely<Database>
  dialect: Dialect
  /** The SQLite file, for backups; undefined on PostgreSQL. */
  sqlite?: SQLite.Database
}

// int8 (bigint times, count(*)) as JavaScript numbers: every value we store fits in 2^53.
pg.types.setTypeParser(20, (v) => Number(v))

export interface OpenOptions {
  databaseUrl?: string
  dataDir: string
  /** PostgreSQL schema to use (tests give each file its own). */
  pgSchema?: string
  sqliteFile?: string
}

export function openDatabase(opts: OpenOptions): DatabaseHandle {
  if (opts.databaseUrl) {
    const pool = new pg.Pool({
      connectionString: opts.databaseUrl,
      max: 10,
      ...(opts.pgSchema ? { options: `-c search_path=${opts.pgSchema},public` } : {}),
    })
    return { db: new Kysely<Database>({ dialect: new PostgresDialect({ pool }), log: kyselyQueryLog() }), dialect: 'postgres' }
  }
  fs.mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 })
  const file = opts.sqliteFile ?? path.join(opts.dataDir, 'portal.sqlite')
  const sqlite = new SQLite(file, { nativeBinding: SQLITE_NATIVE_BINDING })
  sqlite.pragma('journal_mode = WAL')
  sqlite.pragma('synchronous = FULL')
  sqlite.pragma('foreign_keys = ON')
  sqlite.pragma('busy_timeout = 5000')
  return { db: new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }), log: kyselyQueryLog() }), dialect: 'sqlite', sqlite }
}
