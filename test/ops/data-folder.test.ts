// The data folder: the database and its WAL files are private (0600) whatever the umask and
// the folder's mode, and a folder or database the portal cannot write stops the start with
// a message instead of a portal that is "ready" while every change fails.
import { execFileSync, spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { buildApp } from '../../src/app.ts'
import { loadConfig } from '../../src/config.ts'
import { cleanEnv } from '../support/processes.ts'
import type { Tap } from '../helper.ts'
import { ROOT, tempDir } from '../support/portal-process.ts'

const config = (dataDir: string) => loadConfig({ NODE_ENV: 'test', DATA_DIR: dataDir, BASE_URL: 'http://portal.test', LOG_LEVEL: 'silent' })
const mode = (file: string) => (fs.statSync(file).mode & 0o777).toString(8)


/** A portal's data folder with its database, the portal closed. */
async function dataFolder(t: Tap): Promise<string> {
  const dir = tempDir(t)
  const app = await buildApp(config(dir))
  await app.close()
  return dir
}

t.test('portal.sqlite and its -wal and -shm files are 0600 with umask 022 in a 0755 folder', async (t) => {
  const dir = tempDir(t)
  fs.chmodSync(dir, 0o755)
  const umask = process.umask(0o022)
  t.teardown(() => process.umask(umask))
  const app = await buildApp(config(dir))
  t.teardown(() => app.close())
  await app.db.insertInto('approved_domains').values({ domain: 'mode.example', created_at: Date.now() }).execute()
  const file = path.join(dir, 'portal.sqlite')
  t.same([mode(file), mode(`${file}-wal`), mode(`${file}-shm`)], ['600', '600', '600'])
})

t.test('a database an older portal made 0644 is made 0600 at start-up', async (t) => {
  const dir = await dataFolder(t)
  const file = path.join(dir, 'portal.sqlite')
  fs.chmodSync(file, 0o644)
  const app = await buildApp(config(dir))
  t.teardown(() => app.close())
  t.equal(mode(file), '600')
})

// Tests run as root here, and root writes through file modes: a read-only folder is made
// with the immutable attribute then (chattr +i stops root too), with chmod otherwise.
const root = process.getuid?.() === 0
function makeReadOnly(t: Tap, target: string): void {
  if (root) {
    execFileSync('chattr', ['+i', target])
    t.teardown(() => execFileSync('chattr', ['-i', target]))
  } else {
    const before = fs.statSync(target).mode & 0o777
    fs.chmodSync(target, fs.statSync(target).isDirectory() ? 0o555 : 0o444)
    t.teardown(() => fs.chmodSync(target, before))
  }
}
function canMakeReadOnly(): boolean {
  if (!root) return true
  try {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mssp-chattr-'))
    execFileSync('chattr', ['+i', dir], { stdio: 'ignore' })
    execFileSync('chattr', ['-i', dir], { stdio: 'ignore' })
    fs.rmSync(dir, { recursive: true })
    return true
  } catch {
    return false
  }
}
const readOnlySkip = canMakeReadOnly() ? false : 'root without chattr +i: cannot make a folder read-only for this process'

t.test('a read-only data folder stops `serve` with a message', { skip: readOnlySkip }, async (t) => {
  const dir = await dataFolder(t)
  makeReadOnly(t, dir)
  makeReadOnly(t, path.join(dir, 'portal.sqlite'))
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'serve'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: cleanEnv({ NODE_ENV: 'production', HOST: '127.0.0.1', PORT: '0', DATA_DIR: dir, LOG_LEVEL: 'warn' }),
  })
  let output = ''
  child.stdout!.on('data', (d) => (output += d))
  child.stderr!.on('data', (d) => (output += d))
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)))
  clearTimeout(timer)
  t.equal(code, 1, 'exit code 1')
  t.match(output, `The data folder ${dir} is read-only`, 'the message names the folder')
  t.match(output, /Make it writable/)
})

t.test('a read-only database file in a writable folder stops the start too', { skip: readOnlySkip }, async (t) => {
  const dir = await dataFolder(t)
  makeReadOnly(t, path.join(dir, 'portal.sqlite'))
  await t.rejects(buildApp(config(dir)), /The database file .*portal\.sqlite is read-only/)
})
