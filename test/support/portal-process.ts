// The real portal (`src/cli.ts serve`) as a child process on a free port, for the browser
// and operations tests: on a data folder of its own (removed with the test) or one the test
// owns (to kill it with SIGKILL and start it again on the same data), or on a PostgreSQL
// schema; and an HTTP client that keeps the session cookie and the page's CSRF token.
// Not a test file itself (tap runs *.test.ts).
import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import pg from 'pg'
import SQLite from 'better-sqlite3'
import type { Kysely } from 'kysely'
import { randomToken } from '../../src/lib/tokens.ts'
import { openDatabase } from '../../src/db/index.ts'
import { up as rateLimitsTable } from '../../migrations/0008_rate_limits.ts'
import type { Tap } from '../helper.ts'
import { ADMIN_USERNAME, PASSWORD } from './fixtures.ts'
import { cleanEnv, freePort, runNode, type RunResult } from './processes.ts'

export const ROOT = path.resolve(import.meta.dirname, '..', '..')
/** Keys every process sharing a PostgreSQL database must share. */
export const SHARED_KEYS = { SESSION_KEY: 'd5'.repeat(32), SECRETS_KEY: 'e6'.repeat(32) }

/** A temporary folder removed with the test. */
export function tempDir(t: Tap, prefix = 'mssp-ops-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** A fresh PostgreSQL schema in TEST_DATABASE_URL's database, dropped with the test; the URL selects it. */
export async function freshPgSchema(t: Tap): Promise<string> {
  const base = process.env.TEST_DATABASE_URL
  if (!base) throw new Error('TEST_DATABASE_URL is not set')
  const schema = `ops_${randomToken(9).toLowerCase().replace(/[^a-z0-9]/g, '')}`
  const client = new pg.Client({ connectionString: base })
  await client.connect()
  await client.query(`create schema ${schema}`)
  await client.end()
  t.teardown(async () => {
    const c = new pg.Client({ connectionString: base })
    await c.connect()
    try {
      await c.query(`drop schema if exists ${schema} cascade`)
    } finally {
      await c.end()
    }
  })
  const url = new URL(base)
  url.searchParams.set('options', `-c search_path=${schema}`)
  return url.toString()
}

/** Two connections to one new database (as two portal processes have), with the rate_limits table made. */
export async function twoConnections(t: Tap, dialect: 'sqlite' | 'postgres'): Promise<[Kysely<any>, Kysely<any>]> {
  const dataDir = tempDir(t)
  const databaseUrl = dialect === 'postgres' ? await freshPgSchema(t) : undefined
  const a = openDatabase({ dataDir, databaseUrl }).db
  const b = openDatabase({ dataDir, databaseUrl }).db
  t.teardown(async () => {
    await a.destroy()
    await b.destroy()
  })
  await rateLimitsTable(a)
  return [a, b]
}

export interface PortalProcess {
  baseUrl: string
  dataDir: string
  /** The SQLite file in dataDir (when no DATABASE_URL is given). */
  dbFile: string
  child: ChildProcess
  /** Everything the portal printed, for diagnostics. */
  output(): string
  running(): boolean
  /** SIGKILL: no shutdown code runs. Resolves once the process is gone. */
  kill(): Promise<void>
  /** SIGTERM (a graceful close), SIGKILL after 10 s. */
  stop(): Promise<number | null>
  /** Runs `src/cli.ts <args>` against this portal's DATA_DIR; resolves with its output. */
  cli(args: string[], stdin?: string): Promise<RunResult>
  /** Creates an Administrator with the CLI (password on stdin, as an operator would type it). */
  createAdministrator(username: string, name: string, password?: string): Promise<void>
  /** Opens the SQLite file for a moment (the portal keeps it open too; WAL allows both). */
  withDb<T>(fn: (db: SQLite.Database) => T): T
  /** The latest mail to a recipient, read from the outbox table. */
  lastMailTo(recipient: string): { recipient: string; subject: string; body: string; created_at: number } | undefined
}

export interface StartOptions {
  /** The data folder (SQLite file, key files), owned and removed by the caller; by default one removed with the test. */
  dataDir?: string
  env?: Record<string, string>
  /** MSSP_ADMIN_* for an unattended first Administrator (ADMIN_USERNAME, PASSWORD); default true. */
  admin?: boolean
  timeoutMs?: number
}

/** Starts the portal and waits until /readyz says 200; it is stopped with the test if still running then. */
export async function startPortal(t: Tap, opts: StartOptions = {}): Promise<PortalProcess> {
  const ownDir = opts.dataDir === undefined
  const dataDir = opts.dataDir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'mssp-portal-'))
  let output = ''
  for (let attempt = 1; attempt <= 3; attempt++) {
    const port = await freePort()
    const baseUrl = `http://127.0.0.1:${port}`
    output = ''
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'serve'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: cleanEnv({
        NODE_ENV: 'production',
        HOST: '127.0.0.1',
        PORT: String(port),
        BASE_URL: baseUrl,
        DATA_DIR: dataDir,
        LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn',
        SIGNIN_RATE_LIMIT_PER_MINUTE: '10000',
        // Tests stop portals often, with no load balancer to wait for; the drain (default 5 s)
        // is test/ops/drain.test.ts's business.
        SHUTDOWN_DRAIN_SECONDS: '0',
        ...(opts.admin === false ? {} : { MSSP_ADMIN_USERNAME: ADMIN_USERNAME, MSSP_ADMIN_PASSWORD: PASSWORD }),
        ...opts.env,
      }),
    })
    child.stdout!.on('data', (d) => (output += d))
    child.stderr!.on('data', (d) => (output += d))
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    // Should the test process end without its teardown (a tap timeout), take the portal along.
    const killOnExit = () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    }
    process.once('exit', killOnExit)
    const running = () => child.exitCode === null && child.signalCode === null
    const dbFile = path.join(dataDir, 'portal.sqlite')
    const cliEnv = cleanEnv({ NODE_ENV: 'production', DATA_DIR: dataDir, BASE_URL: baseUrl, LOG_LEVEL: 'warn' })
    const portal: PortalProcess = {
      baseUrl,
      dataDir,
      dbFile,
      child,
      output: () => output,
      running,
      async kill() {
        if (running()) child.kill('SIGKILL')
        await exited
      },
      async stop() {
        if (running()) {
          child.kill('SIGTERM')
          const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
          await exited
          clearTimeout(timer)
        }
        return child.exitCode
      },
      cli: (args, stdin) => runNode(['--import', 'tsx', 'src/cli.ts', ...args], { env: cliEnv, stdin }),
      async createAdministrator(username, name, password = PASSWORD) {
        const res = await portal.cli(['create-admin', '--username', username, '--name', name], `${password}\n`)
        if (res.code !== 0) throw new Error(`create-admin ${username} failed (${res.code}):\n${res.stdout}${res.stderr}`)
      },
      withDb(fn) {
        const db = new SQLite(dbFile)
        try {
          db.pragma('busy_timeout = 5000')
          return fn(db)
        } finally {
          db.close()
        }
      },
      lastMailTo(recipient) {
        return portal.withDb((db) =>
          db
            .prepare('select recipient, subject, body, created_at from outbox where recipient = ? order by created_at desc limit 1')
            .get(recipient) as ReturnType<PortalProcess['lastMailTo']>,
        )
      },
    }
    if (await waitUntilReady(baseUrl, exited, opts.timeoutMs ?? 30_000)) {
      t.teardown(async () => {
        await portal.stop()
        process.off('exit', killOnExit)
        if (ownDir) fs.rmSync(dataDir, { recursive: true, force: true })
      })
      return portal
    }
    await portal.kill()
    process.off('exit', killOnExit)
    if (!/EADDRINUSE/.test(output)) break
  }
  if (ownDir) fs.rmSync(dataDir, { recursive: true, force: true })
  throw new Error(`the portal did not start. Its output:\n${output}`)
}

async function waitUntilReady(baseUrl: string, exited: Promise<void>, timeoutMs: number): Promise<boolean> {
  let gone = false
  void exited.then(() => (gone = true))
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline && !gone) {
    try {
      const res = await fetch(`${baseUrl}/readyz`, { signal: AbortSignal.timeout(2_000) })
      if (res.status === 200) return true
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  return false
}

export interface Response {
  status: number
  headers: Headers
  body: string
  json<T = any>(): T
}

/** A browser-like HTTP client: keeps cookies, and the CSRF token of the last page it read. */
export class HttpClient {
  cookies = new Map<string, string>()
  csrf = ''
  constructor(public baseUrl: string) {}

  /** The same cookies and token, sent to another portal process. */
  to(baseUrl: string): HttpClient {
    const other = new HttpClient(baseUrl)
    other.cookies = this.cookies
    other.csrf = this.csrf
    return other
  }

  async request(method: string, url: string, opts: { body?: string; headers?: Record<string, string>; timeoutMs?: number } = {}): Promise<Response> {
    const cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ')
    const res = await fetch(this.baseUrl + url, {
      method,
      redirect: 'manual',
      headers: { ...(cookie ? { cookie } : {}), ...opts.headers },
      body: opts.body,
      signal: AbortSignal.timeout(opts.timeoutMs ?? 15_000),
    })
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';')
      const eq = pair!.indexOf('=')
      const name = pair!.slice(0, eq)
      if (/Max-Age=0|Expires=Thu, 01 Jan 1970/i.test(c)) this.cookies.delete(name)
      else this.cookies.set(name, pair!.slice(eq + 1))
    }
    const body = await res.text()
    const token = /name="(?:_csrf|csrf-token)" (?:value|content)="([^"]+)"/.exec(body)?.[1]
    if (token) this.csrf = token
    return { status: res.status, headers: res.headers, body, json: () => JSON.parse(body) }
  }

  get(url: string, headers: Record<string, string> = {}): Promise<Response> {
    return this.request('GET', url, { headers })
  }

  /** A form post as a browser sends it, with the page's CSRF token. */
  post(url: string, form: Record<string, string> = {}): Promise<Response> {
    return this.request('POST', url, {
      body: new URLSearchParams({ _csrf: this.csrf, ...form }).toString(),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    })
  }

  /** A JSON call with the browser session (and its CSRF token in a header). */
  json(method: string, url: string, body?: unknown): Promise<Response> {
    return this.request(method, url, {
      body: body === undefined ? undefined : JSON.stringify(body),
      headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), 'x-csrf-token': this.csrf },
    })
  }

  /** Signs in through the Log in page; resolves with the answer to the POST. */
  async signIn(username = ADMIN_USERNAME, password = PASSWORD): Promise<Response> {
    await this.get('/login')
    return this.post('/login', { username, password })
  }

  /** The X-ApiKeys header of freshly generated keys (PUT /api/session/keys with this session). */
  async apiKeys(): Promise<Record<string, string>> {
    await this.get('/my-account')
    const res = await this.json('PUT', '/api/session/keys')
    if (res.status !== 200) throw new Error(`PUT /api/session/keys: ${res.status} ${res.body.slice(0, 500)}`)
    const keys = res.json<{ accessKey: string; secretKey: string }>()
    return { 'x-apikeys': `accessKey=${keys.accessKey};secretKey=${keys.secretKey}` }
  }
}

/** An API call with X-ApiKeys (no cookie). */
export async function api(baseUrl: string, keys: Record<string, string>, method: string, url: string, body?: unknown, timeoutMs = 15_000): Promise<Response> {
  const res = await fetch(baseUrl + url, {
    method,
    headers: { ...keys, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(timeoutMs),
  })
  const text = await res.text()
  return { status: res.status, headers: res.headers, body: text, json: () => JSON.parse(text) }
}

/** PRAGMA integrity_check of a SQLite file (the portal may have it open: WAL allows it). */
export function integrityCheck(file: string): string {
  const db = new SQLite(file, { fileMustExist: true })
  try {
    db.pragma('busy_timeout = 5000')
    return (db.pragma('integrity_check') as Array<{ integrity_check: string }>).map((r) => r.integrity_check).join('\n')
  } finally {
    db.close()
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
