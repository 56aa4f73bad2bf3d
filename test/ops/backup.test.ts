import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'
import SQLite from 'better-sqlite3'
import { BackupError, backup, backupCommand, restore, restoreCommand } from '../../src/ops/backup.ts'
import { totpCodeAt } from '../../src/lib/otp.ts'
import { PASSWORD } from '../support/fixtures.ts'
import { HttpClient, api, integrityCheck, sleep, startPortal, tempDir } from '../support/portal-process.ts'

t.setTimeout(120_000)

function output() {
  const lines = { log: [] as string[], error: [] as string[] }
  return { lines, out: { log: (m: string) => lines.log.push(m), error: (m: string) => lines.error.push(m) } }
}

t.test('backup while the portal serves and writes; restore into a new folder; the restored portal works', async (t) => {
  const root = tempDir(t)
  const dataDir = path.join(root, 'data')
  const portal = await startPortal(t, { dataDir })
  const browser = new HttpClient(portal.baseUrl)
  t.equal((await browser.signIn()).status, 303, 'signed in')
  const keys = await browser.apiKeys()

  const created: string[] = []
  for (let i = 0; i < 10; i++) {
    const res = await api(portal.baseUrl, keys, 'POST', '/api/mssp/accounts', { container_name: `Before ${i}`, notes: `n${i}` })
    t.equal(res.status, 200, `account ${i} created`)
    created.push(res.json().uuid)
  }

  // An authenticator app for the Administrator: its secret is encrypted with secrets.key.
  await browser.get('/my-account/two-factor/authenticator')
  const setup = await browser.post('/my-account/two-factor/authenticator/start', { current_password: PASSWORD })
  t.equal(setup.status, 200)
  const secret = /id="totp-secret">([A-Z2-7 ]+)</.exec(setup.body)![1]!.replace(/ /g, '')
  t.equal((await browser.post('/my-account/two-factor/authenticator', { code: totpCodeAt(secret) })).status, 200, 'authenticator set up')

  // A client keeps writing while the backup runs.
  let writing = true
  const acked: Array<{ uuid: string; at: number }> = []
  const writer = (async () => {
    for (let i = 0; writing; i++) {
      const res = await api(portal.baseUrl, keys, 'POST', '/api/mssp/accounts', { container_name: `During ${i}`, notes: 'x'.repeat(2000) })
      if (res.status === 200) acked.push({ uuid: res.json().uuid, at: Date.now() })
      else throw new Error(`a write failed during the backup: ${res.status} ${res.body}`)
    }
  })()
  await sleep(300)
  const file = path.join(root, 'nightly.mssp-backup')
  const started = Date.now()
  const result = await backup(dataDir, file)
  const finished = Date.now()
  await sleep(200)
  writing = false
  await writer
  t.ok(acked.length > 3, `the client kept writing (${acked.length} accounts during the test, backup took ${finished - started} ms)`)
  t.same(result.keyFiles, ['secrets.key', 'session.key'], 'both key files are in the backup')
  t.equal(fs.statSync(file).mode & 0o777, 0o600, 'the backup file is readable by its owner only')
  t.same(fs.readdirSync(root).sort(), ['data', 'nightly.mssp-backup'], 'no temporary files left beside it')

  const inBackup = new SQLite(file, { readonly: true })
  const uuids = new Set((inBackup.prepare('select uuid from accounts').all() as Array<{ uuid: string }>).map((r) => r.uuid))
  const files = inBackup.prepare('select name, mode, length(content) as size from backup_files order by name').all() as Array<{ name: string; mode: number; size: number }>
  inBackup.close()
  t.same(files.map((f) => [f.name, f.mode, f.size]), [['secrets.key', 0o600, 65], ['session.key', 0o600, 65]])
  const before = [...created, ...acked.filter((a) => a.at < started).map((a) => a.uuid)]
  t.same(before.filter((u) => !uuids.has(u)), [], `all ${before.length} accounts written before the backup began are in it`)
  t.notOk(acked.some((a) => a.at > finished + 50 && uuids.has(a.uuid)), 'nothing written after the backup ended is in it (one snapshot)')

  // Restore refuses a folder that holds anything, and changes nothing there.
  const present = fs.readdirSync(dataDir).sort()
  await t.rejects(restore(file, dataDir), { constructor: BackupError, message: /empty data folder/ })
  t.same(fs.readdirSync(dataDir).sort(), present)

  const restoredDir = path.join(root, 'restored')
  const restored = await restore(file, restoredDir)
  t.same(restored.keyFiles, ['secrets.key', 'session.key'])
  t.same(fs.readdirSync(restoredDir).sort(), ['portal.sqlite', 'secrets.key', 'session.key'])
  for (const name of ['secrets.key', 'session.key']) {
    t.equal(fs.statSync(path.join(restoredDir, name)).mode & 0o777, 0o600, `${name}: mode 0600`)
    t.equal(fs.readFileSync(path.join(restoredDir, name), 'utf8'), fs.readFileSync(path.join(dataDir, name), 'utf8'), `${name}: the same key`)
  }
  const db = new SQLite(path.join(restoredDir, 'portal.sqlite'), { readonly: true })
  t.notOk(db.prepare(`select 1 from sqlite_master where name = 'backup_files'`).get(), 'the restored database has no backup_files table')
  db.close()
  t.equal(integrityCheck(path.join(restoredDir, 'portal.sqlite')), 'ok')

  // The live portal goes on; a second portal runs on the restored copy.
  const copy = await startPortal(t, { dataDir: restoredDir })
  const again = new HttpClient(copy.baseUrl)
  const signIn = await again.signIn()
  t.equal(signIn.status, 303)
  t.equal(signIn.headers.get('location'), '/login/verify', 'the same password; the second factor is asked for')
  await again.get('/login/verify')
  const verify = await again.post('/login/verify', { code: totpCodeAt(secret, Date.now() + 30_000) })
  t.equal(verify.status, 303, 'the authenticator code works: the TOTP secret decrypts with the restored secrets.key')
  t.equal((await again.get('/accounts')).status, 200, 'signed in on the restored portal')
  const list = await api(copy.baseUrl, keys, 'GET', '/api/mssp/accounts')
  t.equal(list.status, 200, 'the API keys made before the backup work on the restored portal')
  const names = new Set(list.json().accounts.map((a: { uuid: string }) => a.uuid))
  t.ok(created.every((u) => names.has(u)), 'every account made before the backup is there')
  t.equal(integrityCheck(path.join(restoredDir, 'portal.sqlite')), 'ok', 'integrity_check after the restored portal ran')
})

t.test('backup and restore refuse what they cannot do, clearly', async (t) => {
  const root = tempDir(t)
  await t.rejects(backup(path.join(root, 'nothing'), path.join(root, 'b')), { message: /No portal database/ })
  fs.writeFileSync(path.join(root, 'not-a-backup'), 'hello')
  await t.rejects(restore(path.join(root, 'not-a-backup'), path.join(root, 'new')), { constructor: BackupError, message: /not a portal backup/ })
  t.notOk(fs.existsSync(path.join(root, 'new')), 'no folder created for a refused restore')
  const plain = new SQLite(path.join(root, 'plain.sqlite'))
  plain.exec('create table users (id integer)')
  plain.close()
  await t.rejects(restore(path.join(root, 'plain.sqlite'), path.join(root, 'new')), { message: /not a portal backup/ })
})

t.test('the commands: usage, PostgreSQL, messages and exit codes', async (t) => {
  const root = tempDir(t)
  const usage = output()
  t.equal(await backupCommand([], usage.out, {}), 2)
  t.match(usage.lines.error.join('\n'), 'Usage: mssp-portal backup FILE')
  t.equal(await restoreCommand(['a', 'b'], usage.out, {}), 2)

  const pg = output()
  const pgEnv = { DATA_DIR: root, DATABASE_URL: 'postgres://db.internal/portal', SESSION_KEY: 'a1'.repeat(32), SECRETS_KEY: 'b2'.repeat(32) }
  t.equal(await backupCommand([path.join(root, 'b')], pg.out, pgEnv), 1)
  t.match(pg.lines.error.join('\n'), /PostgreSQL[\s\S]*pg_dump[\s\S]*docs\/operations\.md/)
  t.notOk(fs.existsSync(path.join(root, 'b')))
  t.equal(await restoreCommand([path.join(root, 'b')], pg.out, pgEnv), 1)

  // A small portal database made by the app itself, then the commands round trip.
  const dataDir = path.join(root, 'data')
  const { buildApp } = await import('../../src/app.ts')
  const { loadConfig } = await import('../../src/config.ts')
  const app = await buildApp(loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent', DATA_DIR: dataDir }))
  await app.close()
  const ok = output()
  t.equal(await backupCommand([path.join(root, 'b')], ok.out, { DATA_DIR: dataDir }), 0, ok.lines.error.join('\n'))
  t.match(ok.lines.log.join('\n'), /Backed up .*portal\.sqlite .* secrets\.key, session\.key to /)
  t.match(ok.lines.log.join('\n'), 'store it as carefully as the data folder')
  const env = output()
  t.equal(await backupCommand([path.join(root, 'b2')], env.out, { DATA_DIR: dataDir, SESSION_KEY: 'a1'.repeat(32) }), 0)
  t.match(env.lines.log.join('\n'), 'SESSION_KEY come from the environment and are not in the backup')

  const refused = output()
  t.equal(await restoreCommand([path.join(root, 'b')], refused.out, { DATA_DIR: dataDir }), 1)
  t.match(refused.lines.error.join('\n'), /Restore needs an empty data folder, and .* holds: .*portal\.sqlite/)
  const restored = output()
  t.equal(await restoreCommand([path.join(root, 'b')], restored.out, { DATA_DIR: path.join(root, 'fresh') }), 0, restored.lines.error.join('\n'))
  t.match(restored.lines.log.join('\n'), /Restored .* into .*fresh .*Start the portal with DATA_DIR=/)
  t.equal(integrityCheck(path.join(root, 'fresh', 'portal.sqlite')), 'ok')
})
