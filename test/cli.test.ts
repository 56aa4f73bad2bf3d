import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import pg from 'pg'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../src/app.ts'
import { loadConfig } from '../src/config.ts'
import { randomToken } from '../src/lib/tokens.ts'
import { ADMIN_PASSWORD, Client, dialects, type DialectName, type Tap } from './helper.ts'
import pkg from '../package.json' with { type: 'json' }
import { runNode, type RunResult } from './support/processes.ts'

const ROOT = path.resolve(import.meta.dirname, '..')
const CLI = ['--import', 'tsx', 'src/cli.ts']
const TIMEOUT_MS = 20_000
const SESSION_KEY = 'b2'.repeat(32)
// Keys every process sharing a PostgreSQL database must share.
const SHARED_KEYS = { SESSION_KEY, SECRETS_KEY: 'c4'.repeat(32) }

// Each run starts a Node process (about 1.5 s): more than tap's default 30 s per file.
t.setTimeout(240_000)

/** A clean environment: nothing of the developer's shell (DATABASE_URL, MSSP_ADMIN_*) leaks in. */
function baseEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: process.env.HOME, TMPDIR: os.tmpdir(), NODE_ENV: 'test', LOG_LEVEL: 'silent', ...extra }
}

/** Runs the CLI to completion (killed after TIMEOUT_MS), feeding `input` on stdin. */
function run(args: string[], env: Record<string, string>, input = '', timeout = TIMEOUT_MS): Promise<RunResult> {
  return runNode([...CLI, ...args], { env: baseEnv(env), stdin: input, timeout })
}

/** Runs SQL on the PostgreSQL server's test database (for creating and dropping databases). */
async function admin(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL })
  await client.connect()
  try {
    await client.query(sql)
  } finally {
    await client.end()
  }
}

/**
 * A fresh PostgreSQL database, dropped with the test. A database rather than a schema: the
 * CLI reads only the environment, and a database of its own keeps these runs apart from
 * the schemas other test files are migrating at the same time.
 */
async function freshPgDatabase(t: Tap): Promise<URL> {
  const name = `mssp_cli_${randomToken(9).toLowerCase().replace(/[^a-z0-9]/g, '')}`
  await admin(`create database ${name}`)
  t.teardown(() => admin(`drop database if exists ${name} with (force)`))
  const url = new URL(process.env.TEST_DATABASE_URL!)
  url.pathname = `/${name}`
  return url
}

/** A fresh data folder and, on PostgreSQL, a fresh database: the environment the CLI and the app share. */
async function freshDatabase(t: Tap, dialect: DialectName): Promise<Record<string, string>> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mssp-cli-'))
  t.teardown(() => fs.rmSync(dataDir, { recursive: true, force: true }))
  const env: Record<string, string> = { DATA_DIR: dataDir, BASE_URL: 'http://portal.test' }
  if (dialect === 'postgres') {
    Object.assign(env, SHARED_KEYS, { DATABASE_URL: (await freshPgDatabase(t)).toString() })
  }
  return env
}

/** The portal itself on the same data, as `serve` would build it (closed by the caller). */
async function openApp(env: Record<string, string>): Promise<FastifyInstance> {
  return buildApp(loadConfig({ NODE_ENV: 'test', LOG_LEVEL: 'silent', ...env }))
}

async function usernames(env: Record<string, string>): Promise<string[]> {
  const app = await openApp(env)
  try {
    return (await app.db.selectFrom('users').select('username').execute()).map((u) => u.username)
  } finally {
    await app.close()
  }
}

t.test('--version prints the package version', async (t) => {
  const res = await run(['--version'], {})
  t.equal(res.code, 0)
  t.equal(res.stdout.trim(), pkg.version)
})

t.test('--help lists the commands', async (t) => {
  const res = await run(['--help'], {})
  t.equal(res.code, 0)
  for (const command of ['serve', 'migrate', 'create-admin', 'outbox', '--version', '--help']) t.match(res.stdout, command)
  t.match(res.stdout, '--username')
})

t.test('an unknown command exits 2 with the help', async (t) => {
  const res = await run(['frobnicate'], {})
  t.equal(res.code, 2)
  t.match(res.stderr, 'Unknown command: frobnicate')
  t.match(res.stderr, 'create-admin')
})

t.test('serve with a bad PORT exits non-zero with a message naming PORT', async (t) => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mssp-cli-'))
  t.teardown(() => fs.rmSync(dataDir, { recursive: true, force: true }))
  for (const port of ['eighty', '99999']) {
    const res = await run(['serve'], { DATA_DIR: dataDir, PORT: port })
    t.not(res.code, 0, `PORT=${port}`)
    t.match(res.stderr, /Invalid configuration:[\s\S]*PORT/, `PORT=${port}: named`)
    t.notMatch(res.stderr, /\bat .*\.ts:\d+/, 'a message, not a stack trace')
  }
  const res = await run(['serve'], { DATA_DIR: dataDir, DATABASE_URL: 'postgres://db.internal/portal' })
  t.not(res.code, 0)
  t.match(res.stderr, 'SESSION_KEY', 'PostgreSQL without SESSION_KEY is refused before connecting')
})

for (const dialect of dialects) {
  t.test(`${dialect}: CLI`, async (t) => {
    t.test('migrate applies the migrations, then says the database is up to date', async (t) => {
      const env = await freshDatabase(t, dialect)
      const first = await run(['migrate'], env)
      t.equal(first.code, 0, first.stderr)
      t.match(first.stdout, /^Applied: .*0001/m)
      const second = await run(['migrate'], env)
      t.equal(second.code, 0, second.stderr)
      t.equal(second.stdout.trim(), 'The database is up to date.')
    })

    if (dialect === 'postgres') {
      t.test('two portals can live in two schemas of one PostgreSQL database', async (t) => {
        const url = await freshPgDatabase(t)
        const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mssp-cli-'))
        t.teardown(() => fs.rmSync(dataDir, { recursive: true, force: true }))
        const base = new pg.Client({ connectionString: url.toString() })
        await base.connect()
        await base.query('create schema staging; create schema production')
        await base.end()
        for (const schema of ['staging', 'production']) {
          const withSchema = new URL(url)
          withSchema.searchParams.set('options', `-c search_path=${schema}`)
          const res = await run(['migrate'], { DATA_DIR: dataDir, DATABASE_URL: withSchema.toString(), ...SHARED_KEYS })
          t.equal(res.code, 0, `${schema}: ${res.stderr.trim()}`)
          t.match(res.stdout, /^Applied: .*0001/m, `${schema}: migrated`)
        }
      })
    }

    t.test('create-admin reads the password from stdin and the Administrator can sign in', async (t) => {
      const env = await freshDatabase(t, dialect)
      const res = await run(['create-admin', '--username', 'A@Example.com', '--name', 'A B'], env, `${ADMIN_PASSWORD}\n`)
      t.equal(res.code, 0, res.stderr)
      t.match(res.stdout, 'Administrator a@example.com created; the domain example.com is approved.')
      t.notMatch(res.stdout + res.stderr, ADMIN_PASSWORD, 'the password is not echoed')
      const app = await openApp(env)
      try {
        const user = await app.db.selectFrom('users').selectAll().executeTakeFirstOrThrow()
        t.equal(user.username, 'a@example.com')
        t.equal(user.name, 'A B')
        t.equal(user.role, 64)
        t.same((await app.db.selectFrom('approved_domains').select('domain').execute()).map((d) => d.domain), ['example.com'])
        const client = new Client(app)
        t.equal((await client.signIn('a@example.com', ADMIN_PASSWORD)).statusCode, 303, 'signing in works')
        const page = await client.get('/accounts')
        t.equal(page.statusCode, 200, `a signed-in page: ${page.statusCode} ${page.statusCode === 200 ? '' : page.body.slice(0, 2000)}`)
      } finally {
        await app.close()
      }
    })

    t.test('create-admin refuses a weak password with the policy message', async (t) => {
      const env = await freshDatabase(t, dialect)
      const res = await run(['create-admin', '--username', 'a@example.com', '--name', 'A B'], env, 'password1\n')
      t.equal(res.code, 1)
      t.match(res.stderr, 'Passwords must be at least 12 characters long')
      t.same(await usernames(env), [], 'no user created')
    })

    t.test('create-admin refuses a duplicate username and a username without a domain', async (t) => {
      const env = await freshDatabase(t, dialect)
      t.equal((await run(['create-admin', '--username', 'a@example.com', '--name', 'A B'], env, `${ADMIN_PASSWORD}\n`)).code, 0)
      const again = await run(['create-admin', '--username', 'a@example.com', '--name', 'Other'], env, `${ADMIN_PASSWORD}\n`)
      t.equal(again.code, 1)
      t.match(again.stderr, 'A user with this username already exists.')
      const bad = await run(['create-admin', '--username', 'root', '--name', 'Root'], env, `${ADMIN_PASSWORD}\n`)
      t.equal(bad.code, 1)
      t.match(bad.stderr, 'name@domain')
      t.same(await usernames(env), ['a@example.com'])
    })

    t.test('create-admin without --username or --name explains what it needs', async (t) => {
      const env = await freshDatabase(t, dialect)
      const res = await run(['create-admin', '--username', 'a@example.com'], env, `${ADMIN_PASSWORD}\n`)
      t.equal(res.code, 2)
      t.match(res.stderr, '--name')
    })

    t.test('create-admin takes the password from MSSP_ADMIN_PASSWORD, as --help says', async (t) => {
      const env = await freshDatabase(t, dialect)
      const res = await run(['create-admin', '--username', 'a@example.com', '--name', 'A B'], { ...env, MSSP_ADMIN_PASSWORD: ADMIN_PASSWORD })
      t.equal(res.code, 0, res.stderr)
      t.same(await usernames(env), ['a@example.com'])
    })

    t.test('outbox shows the queued mail of a forgot-password request', async (t) => {
      const env = await freshDatabase(t, dialect)
      const empty = await run(['outbox'], env)
      t.equal(empty.code, 0, empty.stderr)
      t.equal(empty.stdout.trim(), 'The outbox is empty.')
      t.equal((await run(['create-admin', '--username', 'a@example.com', '--name', 'A B'], env, `${ADMIN_PASSWORD}\n`)).code, 0)
      const app = await openApp(env)
      const client = new Client(app)
      await client.get('/forgot-password')
      t.equal((await client.post('/forgot-password', { username: 'a@example.com' })).statusCode, 200)
      await app.close()
      const res = await run(['outbox'], env)
      t.equal(res.code, 0, res.stderr)
      t.notMatch(res.stdout, 'The outbox is empty.')
      t.match(res.stdout, /email to a@example\.com\s+\[stored\]/)
      t.match(res.stdout, 'Subject: Reset your MSSP Portal password')
      t.match(res.stdout, /http:\/\/portal\.test\/reset-password\?token=[A-Za-z0-9_-]{40,}/, 'the operator can pass the link on')
    })

    t.test('serve with a weak MSSP_ADMIN_PASSWORD exits 1, naming the variable, and creates nobody', async (t) => {
      const env = await freshDatabase(t, dialect)
      // PostgreSQL's idle pool keeps the process up for a while after the error: allow for it.
      const res = await run(['serve'], { ...env, PORT: '0', MSSP_ADMIN_USERNAME: 'root@corp.example', MSSP_ADMIN_PASSWORD: 'admin' }, '', 40_000)
      t.equal(res.code, 1)
      t.match(res.stderr, /MSSP_ADMIN_PASSWORD: Passwords must be at least 12 characters/)
      t.notMatch(res.stdout, '/setup?token=', 'no setup link either')
      t.same(await usernames(env), [])
    })

    t.test('serve on an empty database prints a setup link that works, and stops on SIGTERM', async (t) => {
      const env = await freshDatabase(t, dialect)
      const child: ChildProcess = spawn(process.execPath, [...CLI, 'serve'], {
        cwd: ROOT,
        env: baseEnv({ ...env, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'info' }),
        timeout: TIMEOUT_MS,
      })
      t.teardown(() => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      })
      let stdout = ''
      child.stdout!.on('data', (d) => (stdout += d))
      child.stderr!.on('data', (d) => (stdout += d))
      const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)))
      const ready = await new Promise<boolean>((resolve) => {
        const check = () => {
          if (/\/setup\?token=/.test(stdout) && /Server listening at http:\/\/127\.0\.0\.1:\d+/.test(stdout)) resolve(true)
        }
        child.stdout!.on('data', check)
        child.on('close', () => resolve(false))
      })
      t.ok(ready, `started and printed a link:\n${stdout}`)
      if (!ready) return
      const link = /http:\/\/portal\.test\/setup\?token=([A-Za-z0-9_-]+)/.exec(stdout)
      t.ok(link, 'the link uses BASE_URL')
      const address = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(stdout)![1]
      const page = await fetch(`${address}/setup?token=${link![1]}`)
      t.equal(page.status, 200, 'the printed link opens the setup form')
      t.match(await page.text(), 'Create Administrator')
      child.kill('SIGTERM')
      t.equal(await exited, 0, 'a clean shutdown')
      const logLines = stdout.split('\n').filter((l) => l.startsWith('{'))
      t.ok(logLines.some((l) => l.includes('/setup')), 'the request was logged')
      t.notOk(logLines.some((l) => l.includes(link![1]!)), 'but not its token')
    })
  })
}
