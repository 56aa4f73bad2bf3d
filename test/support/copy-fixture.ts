import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import pg from 'pg'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../../src/app.ts'
import { loadConfig } from '../../src/config.ts'
import type { Tap } from '../helper.ts'

/**
 * For the copy-to-postgres tests: a data folder for a SQLite portal, an empty PostgreSQL schema
 * to copy into (`target`, a URL whose search_path names it), both removed with the test.
 */
export async function copyFixture(t: Tap, url: string, label: string): Promise<{ dataDir: string; schema: string; target: string; openSqlite: () => Promise<FastifyInstance> }> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), `mssp-${label}-`))
  const schema = `${label.replace(/\W/g, '_')}_${Date.now()}_${process.pid}_${Math.random().toString(36).slice(2, 8)}`
  const admin = new pg.Client({ connectionString: url })
  await admin.connect()
  await admin.query(`create schema ${schema}`)
  t.teardown(async () => {
    await admin.query(`drop schema ${schema} cascade`)
    await admin.end()
    fs.rmSync(dataDir, { recursive: true, force: true })
  })
  const target = `${url}${url.includes('?') ? '&' : '?'}options=${encodeURIComponent(`-c search_path=${schema},public`)}`
  const openSqlite = () => buildApp(loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent', DATA_DIR: dataDir }))
  return { dataDir, schema, target, openSqlite }
}
