import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import { loadOrCreateKey } from '../../src/lib/keys.ts'
import type { Tap } from '../helper.ts'

function tempDir(t: Tap): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mssp-keys-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

t.test('first start creates <dir>/session.key (mode 0600); later starts read the same key', async (t) => {
  const dir = tempDir(t)
  const key = loadOrCreateKey(dir, 'session', undefined)
  t.equal(key.length, 32, 'a 32-byte key')
  const file = path.join(dir, 'session.key')
  t.ok(fs.existsSync(file), 'the key file is written')
  t.equal(fs.statSync(file).mode & 0o777, 0o600, 'readable by the owner only')
  t.equal(fs.readFileSync(file, 'utf8').trim(), key.toString('hex'), 'stored as hexadecimal')
  const again = loadOrCreateKey(dir, 'session', undefined)
  t.ok(again.equals(key), 'the next start gets the same key (sessions survive a restart)')
  const other = loadOrCreateKey(tempDir(t), 'session', undefined)
  t.notOk(other.equals(key), 'another installation gets another key')
})

t.test('a missing data folder is created', async (t) => {
  const dir = path.join(tempDir(t), 'nested', 'data')
  const key = loadOrCreateKey(dir, 'session', undefined)
  t.ok(fs.readFileSync(path.join(dir, 'session.key'), 'utf8').includes(key.toString('hex')), 'the key is written into the created folder')
})

t.test('a key in the environment wins over the file, and no file is written', async (t) => {
  const dir = tempDir(t)
  const fromEnv = 'c3'.repeat(32)
  const key = loadOrCreateKey(dir, 'session', fromEnv)
  t.equal(key.toString('hex'), fromEnv, 'the key is the one in the environment')
  t.notOk(fs.existsSync(path.join(dir, 'session.key')), 'nothing written')
  const fileKey = loadOrCreateKey(dir, 'session', undefined)
  t.equal(loadOrCreateKey(dir, 'session', fromEnv).toString('hex'), fromEnv, 'the environment still wins once a file exists')
  t.not(fileKey.toString('hex'), fromEnv, 'the file holds a key of its own, not the environment\'s')
})

t.test('a damaged key file stops the start instead of being replaced', async (t) => {
  const dir = tempDir(t)
  const file = path.join(dir, 'session.key')
  fs.writeFileSync(file, 'not a key\n', { mode: 0o600 })
  t.throws(() => loadOrCreateKey(dir, 'session', undefined), /session\.key.*64-character hexadecimal/, 'refused, naming the file and the expected format')
  t.equal(fs.readFileSync(file, 'utf8'), 'not a key\n', 'the file is left for the operator to look at')
})
