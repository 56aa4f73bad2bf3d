// Support for the browser tests: starts the real portal (`src/cli.ts serve`) as a child
// process on a free port with its own SQLite DATA_DIR, and drives Chromium through
// playwright-core. Not a test file itself (tap runs only *.test.ts).
import { spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import SQLite from 'better-sqlite3'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'
import { cleanEnv, freePort } from '../support/processes.ts'

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium'
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]

export const ADMIN_USERNAME = 'admin@example.com'
export const PASSWORD = 'Correct-Horse-42-Battery'

/** The walks run twice: with JavaScript, and without it (every page must work either way). */
export const MODES = [
  { name: 'with JavaScript', javaScriptEnabled: true },
  { name: 'without JavaScript', javaScriptEnabled: false },
] as const
export type Mode = (typeof MODES)[number]

interface Tap {
  teardown(fn: () => unknown): void
  plan(n: number, comment?: string): void
  fail(message: string): void
  setTimeout(ms: number): void
  comment(...args: unknown[]): void
}

/**
 * True when Chromium is there. Without it the file is skipped with a reason, except in CI
 * (CI=true), where a missing browser is a failure rather than a silent skip.
 */
export function browserAvailable(t: Tap): boolean {
  if (fs.existsSync(CHROMIUM)) return true
  const reason = `browser tests skipped: ${CHROMIUM} not found (install it: apt-get install -y chromium)`
  if (process.env.CI && process.env.CI !== 'false') {
    t.fail(`${reason}; CI must run them`)
  } else {
    t.plan(0, reason)
  }
  return false
}

export interface Portal {
  baseUrl: string
  dataDir: string
  dbFile: string
  /** Everything the portal printed, for diagnostics. */
  output(): string
  /** Runs `src/cli.ts <args>` against this portal's DATA_DIR; resolves with its output. */
  cli(args: string[], stdin?: string): Promise<{ code: number | null; stdout: string; stderr: string }>
  /** Creates an Administrator with the CLI (password on stdin, as an operator would type it). */
  createAdministrator(username: string, name: string, password?: string): Promise<void>
  /** Opens the SQLite file for a moment (the portal keeps it open too; WAL allows both). */
  withDb<T>(fn: (db: SQLite.Database) => T): T
  /** The latest mail to a recipient, read from the outbox table. */
  lastMailTo(recipient: string): { recipient: string; subject: string; body: string; created_at: number } | undefined
}

function runNode(args: string[], env: NodeJS.ProcessEnv, stdin?: string) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', ...args], { cwd: ROOT, env, stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
    child.stdin.end(stdin ?? '')
  })
}

/**
 * Starts the portal with an empty DATA_DIR and MSSP_ADMIN_USERNAME/PASSWORD set, so the
 * first Administrator (admin@example.com) is created unattended. Stopped with the test.
 */
export async function startPortal(t: Tap, env: Record<string, string> = {}): Promise<Portal> {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mssp-browser-'))
  const dbFile = path.join(dataDir, 'portal.sqlite')
  let child: ChildProcess | undefined
  let output = ''
  let baseUrl = ''
  // A free port can be taken between our probe and the portal's listen: try a few.
  for (let attempt = 1; attempt <= 3; attempt++) {
    const port = await freePort()
    baseUrl = `http://127.0.0.1:${port}`
    output = ''
    const proc = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'serve'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: cleanEnv({
        NODE_ENV: 'production',
        HOST: '127.0.0.1',
        PORT: String(port),
        BASE_URL: baseUrl,
        DATA_DIR: dataDir,
        LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn',
        MSSP_ADMIN_USERNAME: ADMIN_USERNAME,
        MSSP_ADMIN_PASSWORD: PASSWORD,
        // No drain on stop: no load balancer to wait for, and each stop would take 5 s longer.
        SHUTDOWN_DRAIN_SECONDS: '0',
        ...env,
      }),
    })
    proc.stdout!.on('data', (d) => (output += d))
    proc.stderr!.on('data', (d) => (output += d))
    const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()))
    if (await waitUntilServing(baseUrl, exited, 30_000)) {
      child = proc
      break
    }
    proc.kill('SIGKILL')
    await exited
    if (!/EADDRINUSE/.test(output)) break
  }
  if (!child) {
    fs.rmSync(dataDir, { recursive: true, force: true })
    throw new Error(`the portal did not start at ${baseUrl}. Its output:\n${output}`)
  }
  const running = child
  // Should the test process end without its teardown (a tap timeout), take the portal along.
  const killOnExit = () => {
    if (running.exitCode === null && running.signalCode === null) running.kill('SIGKILL')
  }
  process.once('exit', killOnExit)
  t.teardown(async () => {
    process.off('exit', killOnExit)
    if (running.exitCode === null && running.signalCode === null) {
      const exited = new Promise((resolve) => running.once('exit', resolve))
      running.kill('SIGTERM')
      const timer = setTimeout(() => running.kill('SIGKILL'), 10_000)
      await exited
      clearTimeout(timer)
    }
    fs.rmSync(dataDir, { recursive: true, force: true })
  })

  const cliEnv = cleanEnv({ NODE_ENV: 'production', DATA_DIR: dataDir, BASE_URL: baseUrl, LOG_LEVEL: 'warn' })
  const portal: Portal = {
    baseUrl,
    dataDir,
    dbFile,
    output: () => output,
    cli: (args, stdin) => runNode(['src/cli.ts', ...args], cliEnv, stdin),
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
          .get(recipient) as ReturnType<Portal['lastMailTo']>,
      )
    },
  }
  return portal
}

async function waitUntilServing(baseUrl: string, exited: Promise<void>, timeoutMs: number): Promise<boolean> {
  let gone = false
  void exited.then(() => (gone = true))
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline && !gone) {
    try {
      const res = await fetch(`${baseUrl}/login`, { redirect: 'manual', signal: AbortSignal.timeout(2_000) })
      if (res.status === 200) return true
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  return false
}

/** Launches Chromium (playwright's own fresh temporary profile); closed with the test. */
export async function launchBrowser(t: Tap): Promise<Browser> {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true })
  t.teardown(() => browser.close())
  return browser
}

export interface Session {
  context: BrowserContext
  page: Page
  /** Page errors, console errors (CSP violations included) and 5xx answers seen so far. */
  problems: string[]
}

/** A fresh browser context (own cookies) with one page, in the given mode. */
export async function newSession(t: Tap, browser: Browser, portal: Portal, mode: Mode): Promise<Session> {
  const context = await browser.newContext({ baseURL: portal.baseUrl, javaScriptEnabled: mode.javaScriptEnabled })
  context.setDefaultTimeout(10_000)
  context.setDefaultNavigationTimeout(15_000)
  t.teardown(() => context.close())
  const page = await context.newPage()
  const problems: string[] = []
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`))
  page.on('console', (msg) => {
    // A 4xx answer (401 for a wrong password, 410 for a used link) is logged by Chromium as
    // "Failed to load resource"; those are expected, anything else is a problem.
    if (msg.type() === 'error' && !/status of 4\d\d/.test(msg.text())) problems.push(`console error: ${msg.text()}`)
  })
  page.on('response', (res) => {
    if (res.status() >= 500) problems.push(`${res.status()} from ${res.url()}`)
  })
  return { context, page, problems }
}

/** The portal's session cookie as the browser keeps it. */
export async function sessionCookie(context: BrowserContext) {
  return (await context.cookies()).find((c) => c.name === 'mssp_session')
}

/** Signs in through the Log in page by its labels, as a user would. */
export async function signIn(page: Page, username: string, password = PASSWORD, rememberMe = false): Promise<void> {
  await page.goto('/login')
  await page.getByLabel('Username', { exact: true }).fill(username)
  await page.getByLabel('Password', { exact: true }).fill(password)
  if (rememberMe) await page.getByLabel('Remember Me', { exact: true }).check()
  await page.getByRole('button', { name: 'Sign In' }).click()
  await page.waitForLoadState()
}
