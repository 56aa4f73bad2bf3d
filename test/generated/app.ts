import fs from 'node:fs'
import path from 'node:path'
import { type DialectName, type TestApp, buildTestApp } from '../helper.ts'

/**
 * The app for a generated suite: rate limits out of the way (thousands of requests from a
 * few callers), and on SQLite the data folder in memory-backed /dev/shm where there is one
 * (thousands of commits, each an fsync on a disk, would be most of the run; durability is
 * not what these suites check).
 */
export async function buildGeneratedApp(t: Parameters<typeof buildTestApp>[0], dialect: DialectName): Promise<TestApp> {
  const env: Record<string, string> = { SIGNIN_RATE_LIMIT_PER_MINUTE: '100000', API_RATE_LIMIT_PER_MINUTE: '1000000' }
  if (dialect === 'sqlite' && fs.existsSync('/dev/shm')) {
    const dir = fs.mkdtempSync(path.join('/dev/shm', 'mssp-generated-'))
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
    env.DATA_DIR = dir
  }
  return buildTestApp(t, dialect, env)
}
