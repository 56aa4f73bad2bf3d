import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Writable } from 'node:stream'
import t from 'tap'
import pg from 'pg'
import type { FastifyInstance } from 'fastify'
import { buildApp, loggerOptions } from '../../src/app.ts'
import { loadConfig } from '../../src/config.ts'
import { randomToken } from '../../src/lib/tokens.ts'
import { NEW_PASSWORD, Client, PASSWORD, createUser, dialects, lastMessageTo, type DialectName, type Tap } from '../helper.ts'

const WRONG_PASSWORD = 'Wrong-Guess-55-Pebble'

/** The app with its real logger options at level info, writing into `lines`. */
async function buildLoggedApp(t: Tap, dialect: DialectName, lines: string[]): Promise<FastifyInstance> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mssp-log-'))
  // On PostgreSQL a database of its own, apart from the schemas other test files migrate.
  let databaseUrl: string | undefined
  let database: string | undefined
  if (dialect === 'postgres') {
    database = `mssp_log_${randomToken(9).toLowerCase().replace(/[^a-z0-9]/g, '')}`
    await adminQuery(`create database ${database}`)
    const url = new URL(process.env.TEST_DATABASE_URL!)
    url.pathname = `/${database}`
    databaseUrl = url.toString()
  }
  const config = loadConfig({
    NODE_ENV: 'test',
    DATA_DIR: dataDir,
    BASE_URL: 'http://portal.test',
    ...(databaseUrl ? { DATABASE_URL: databaseUrl, SESSION_KEY: 'a1'.repeat(32), SECRETS_KEY: 'b2'.repeat(32) } : {}),
  })
  const stream = new Writable({
    write(chunk, _encoding, done) {
      lines.push(...String(chunk).split('\n').filter(Boolean))
      done()
    },
  })
  const options = loggerOptions(config) as object
  const app = await buildApp(config, { logger: { ...options, level: 'info', stream } })
  t.teardown(async () => {
    await app.close()
    fs.rmSync(dataDir, { recursive: true, force: true })
    if (database) await adminQuery(`drop database if exists ${database} with (force)`)
  })
  return app
}

async function adminQuery(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL })
  await client.connect()
  try {
    await client.query(sql)
  } finally {
    await client.end()
  }
}

function cookieValue(cookie: string): string {
  return cookie.slice(cookie.indexOf('=') + 1)
}

for (const dialect of dialects) {
  t.test(`${dialect}: the log holds no secrets`, async (t) => {
    const lines: string[] = []
    const app = await buildLoggedApp(t, dialect, lines)
    const user = await createUser(app)
    const secrets: Record<string, string> = { password: PASSWORD, 'wrong password': WRONG_PASSWORD, 'new password': NEW_PASSWORD }

    // Sign in, then a wrong password from another browser.
    const client = new Client(app)
    t.equal((await client.signIn(user.username)).statusCode, 303, 'signing in answers 303')
    t.equal((await client.get('/accounts')).statusCode, 200, 'GET /accounts answers 200')
    secrets['session cookie'] = cookieValue(client.cookie)
    secrets['CSRF token'] = client.csrf
    t.equal((await new Client(app).signIn(user.username, WRONG_PASSWORD)).statusCode, 401, 'signing in answers 401')

    // Forgot password, then the reset with the mailed token.
    const forgot = new Client(app)
    await forgot.get('/forgot-password')
    secrets['anonymous cookie'] = cookieValue(forgot.cookie)
    t.equal((await forgot.post('/forgot-password', { username: user.username })).statusCode, 200, 'POST /forgot-password answers 200')
    const mail = await lastMessageTo(app, user.username)
    const token = /reset-password\?token=([A-Za-z0-9_-]+)/.exec(mail?.body ?? '')?.[1] ?? ''
    t.ok(token, 'a reset token was mailed')
    secrets['reset token'] = token
    const reset = new Client(app)
    t.equal((await reset.get(`/reset-password?token=${token}`)).statusCode, 200, `GET /reset-password?token=${token} answers 200`)
    t.equal((await reset.post('/reset-password', { token, password: NEW_PASSWORD, confirm: NEW_PASSWORD })).statusCode, 303, 'POST /reset-password answers 303')

    // Sign in with the new password and sign out.
    const again = new Client(app)
    t.equal((await again.signIn(user.username, NEW_PASSWORD)).statusCode, 303, 'signing in answers 303')
    await again.get('/accounts')
    secrets['second session cookie'] = cookieValue(again.cookie)
    t.equal((await again.post('/logout')).statusCode, 303, 'POST /logout answers 303')

    const log = lines.join('\n')
    t.ok(lines.length > 10, `requests were logged (${lines.length} lines)`)
    t.match(log, 'message queued', 'the mail is logged as queued')
    t.match(log, '/reset-password', 'the reset requests are logged by path')
    for (const [name, secret] of Object.entries(secrets)) {
      t.ok(secret.length >= 12, `${name} is known to the test`)
      t.notOk(log.includes(secret), `the log does not contain the ${name}`)
    }
    t.notMatch(log, /"cookie"|"authorization"|"x-csrf-token"/i, 'no request headers are logged')
    t.notMatch(log, /token=/, 'no query strings with tokens')
    const isJson = (line: string) => {
      try {
        return typeof JSON.parse(line) === 'object'
      } catch {
        return false
      }
    }
    t.ok(lines.every(isJson), 'every line is JSON, for log collectors')
  })
}
