// The single executable (issue 9, "One executable"): `npm run build:binary` makes
// dist/mssp-portal; copied to a folder outside the project and run with no Node.js on PATH
// (PATH is an empty folder), it prints its version, creates an Administrator (password on
// stdin), serves with its data in ./data, signs in over HTTP, serves htmx, and stops with
// exit code 0 on SIGTERM, leaving no extracted files behind.
//
// The build is scripts/build-binary.mjs, which reuses what it cached under .cache/binary/:
// the first build on a machine takes minutes (better-sqlite3 compiles against the shipped
// Node, here with one compiler job so that the test running beside this one keeps a core),
// a build that finds dist/mssp-portal up to date takes seconds (when `npm run build:binary`
// ran before the tests, as a CI step may).
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import t from 'tap'
import pkg from '../../package.json' with { type: 'json' }
import { ADMIN_PASSWORD as PASSWORD, ADMIN_USERNAME as USERNAME } from '../support/fixtures.ts'
import { freePort } from '../support/processes.ts'

const ROOT = path.resolve(import.meta.dirname, '..', '..')
const BINARY = path.join(ROOT, 'dist', 'mssp-portal')

// A cold build compiles better-sqlite3 (minutes on 2 busy cores); a warm one takes seconds.
t.setTimeout(15 * 60_000)

const skip = process.platform === 'linux' && process.arch === 'x64' ? false : 'the single executable is built for Linux x64 only'

interface Run {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

function runToEnd(file: string, args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv; input?: string; timeout: number }): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { cwd: opts.cwd, env: opts.env, timeout: opts.timeout })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('error', reject)
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }))
    child.stdin.end(opts.input ?? '')
  })
}

/** Keeps cookies across requests, as a browser would. */
class Client {
  cookies = new Map<string, string>()
  constructor(readonly baseUrl: string) {}
  async request(url: string, init: { method?: string; form?: Record<string, string> } = {}) {
    const cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ')
    const headers: Record<string, string> = {}
    if (cookie) headers.cookie = cookie
    if (init.form) headers['content-type'] = 'application/x-www-form-urlencoded'
    const res = await fetch(this.baseUrl + url, {
      method: init.method ?? (init.form ? 'POST' : 'GET'),
      redirect: 'manual',
      headers,
      body: init.form ? new URLSearchParams(init.form).toString() : undefined,
      signal: AbortSignal.timeout(15_000),
    })
    for (const c of res.headers.getSetCookie()) {
      const pair = c.split(';')[0]!
      const eq = pair.indexOf('=')
      this.cookies.set(pair.slice(0, eq).trim(), pair.slice(eq + 1))
    }
    return { status: res.status, location: res.headers.get('location'), body: await res.text() }
  }
}

t.test('npm run build:binary makes dist/mssp-portal (or finds it up to date)', { skip }, async (t) => {
  const started = Date.now()
  // The Node that runs the tests runs the build script; better-sqlite3 compiles with one job
  // here, leaving the other core to the tests running beside this one.
  const build = spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'build-binary.mjs'), '--quiet', '--jobs', '1'], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 14 * 60_000,
    env: { ...process.env, NODE_OPTIONS: '' },
  })
  t.equal(build.status, 0, `build-binary exits 0${build.status === 0 ? '' : `\n${build.stdout}\n${build.stderr}`}`)
  t.comment(`build-binary: ${((Date.now() - started) / 1000).toFixed(1)} s`)
  const st = fs.statSync(BINARY, { throwIfNoEntry: false })
  t.ok(st?.isFile(), 'dist/mssp-portal exists')
  if (st) {
    t.ok(st.mode & 0o100, 'it is executable')
    t.comment(`dist/mssp-portal: ${(st.size / 1e6).toFixed(1)} MB`)
  }
})

t.test('the executable runs from a folder outside the project with no Node.js on PATH', { skip }, async (t) => {
  if (!fs.existsSync(BINARY)) return t.fail('no dist/mssp-portal to run')

  const dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'mssp-binary-')))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  t.notOk(dir.startsWith(ROOT + path.sep), 'the folder is outside the project')
  const emptyBin = path.join(dir, 'bin') // PATH: an empty folder, so no `node` anywhere on it
  const tmp = path.join(dir, 'tmp') // TMPDIR: where the executable extracts its files
  const install = path.join(dir, 'install')
  for (const d of [emptyBin, tmp, install]) fs.mkdirSync(d, { mode: 0o700 })
  const exe = path.join(install, 'mssp-portal')
  fs.copyFileSync(BINARY, exe)
  fs.chmodSync(exe, 0o755)
  t.same(fs.readdirSync(emptyBin), [], 'nothing on PATH')

  // Only what the portal needs: none of the runner's variables (NODE_OPTIONS, tap's, DATABASE_URL).
  const env = { PATH: emptyBin, HOME: dir, TMPDIR: tmp, LANG: 'C' }
  const leftovers = () => fs.readdirSync(tmp).filter((n) => n.startsWith('mssp-portal-'))

  const version = await runToEnd(exe, ['--version'], { cwd: install, env, timeout: 30_000 })
  t.equal(version.code, 0, `--version exits 0 ${version.stderr}`)
  t.equal(version.stdout.trim(), pkg.version, '--version prints the version')

  const help = await runToEnd(exe, ['--help'], { cwd: install, env, timeout: 30_000 })
  t.equal(help.code, 0, '--help exits 0')
  t.match(help.stdout, /create-admin/, '--help lists the commands')

  const admin = await runToEnd(exe, ['create-admin', '--username', USERNAME, '--name', 'Ada Admin'], {
    cwd: install,
    env: { ...env, LOG_LEVEL: 'warn' },
    input: `${PASSWORD}\n`,
    timeout: 60_000,
  })
  t.equal(admin.code, 0, `create-admin exits 0 ${admin.stderr}`)
  t.match(admin.stdout, /Administrator admin@example\.com created/)
  t.ok(fs.existsSync(path.join(install, 'data', 'portal.sqlite')), 'the data is in ./data')
  t.same(leftovers(), [], 'no extracted files are left after a command')

  const port = await freePort()
  const baseUrl = `http://127.0.0.1:${port}`
  const startedAt = Date.now()
  const child = spawn(exe, ['serve'], {
    cwd: install,
    // No drain on stop (no load balancer): the stop below would take 5 s longer.
    env: { ...env, PORT: String(port), HOST: '127.0.0.1', BASE_URL: baseUrl, LOG_LEVEL: 'warn', SHUTDOWN_DRAIN_SECONDS: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout.on('data', (d) => (output += d))
  child.stderr.on('data', (d) => (output += d))
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })))
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })

  // Started when /login answers.
  let up = false
  while (!up && Date.now() - startedAt < 30_000 && child.exitCode === null) {
    try {
      up = (await fetch(`${baseUrl}/login`, { signal: AbortSignal.timeout(2_000) })).status === 200
    } catch {
      await new Promise((r) => setTimeout(r, 50))
    }
  }
  t.ok(up, `serve answers on ${baseUrl}${up ? '' : `\n${output}`}`)
  if (!up) return
  t.comment(`start-up (spawn to the first 200 from /login): ${Date.now() - startedAt} ms`)

  const extracted = leftovers()
  t.equal(extracted.length, 1, 'one extracted folder while serving')
  if (extracted[0]) t.equal(fs.statSync(path.join(tmp, extracted[0])).mode & 0o777, 0o700, 'the extracted folder is private (0700)')

  const client = new Client(baseUrl)
  const login = await client.request('/login')
  t.equal(login.status, 200, 'GET /login')
  const csrf = /name="_csrf" value="([^"]+)"/.exec(login.body)?.[1]
  t.ok(csrf, 'the sign-in form carries a CSRF token')
  const signIn = await client.request('/login', { form: { username: USERNAME, password: PASSWORD, _csrf: csrf ?? '' } })
  t.equal(signIn.status, 303, 'POST /login redirects')
  t.equal(signIn.location, '/accounts', 'to /accounts')
  const accounts = await client.request('/accounts')
  t.equal(accounts.status, 200, 'GET /accounts is served to the signed-in Administrator')
  t.match(accounts.body, /Accounts/, 'the Accounts page')
  const htmx = await client.request('/static/htmx/htmx.min.js')
  t.equal(htmx.status, 200, 'htmx is served')
  t.match(htmx.body, /htmx/, 'htmx itself')

  child.kill('SIGTERM')
  const exit = await Promise.race([exited, new Promise<null>((r) => setTimeout(() => r(null), 20_000))])
  t.same(exit, { code: 0, signal: null }, `SIGTERM stops it with exit code 0${exit?.code === 0 ? '' : `\n${output}`}`)
  t.same(leftovers(), [], 'the extracted files are removed at exit')
})
