// `npm run bench`: load benchmarks on this machine, printed as ratios against baselines
// measured in the same run (absolute numbers vary between machines; ratios less so).
import { fork, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import autocannon from 'autocannon'
import { loadConfig } from '../src/config.ts'
import { openDatabase } from '../src/db/index.ts'
import { migrateToLatest } from '../src/db/migrations.ts'
import { createAdministrator } from '../src/areas/auth/service.ts'

const DURATION = Number(process.env.BENCH_SECONDS ?? 5)
const PASSWORD = 'Bench-Password-42!x'

function start(args: string[]): Promise<ChildProcess> {
  const child = fork(path.join(import.meta.dirname, 'servers.ts'), args, { execArgv: ['--import', 'tsx'], stdio: 'inherit' })
  return new Promise((resolve, reject) => {
    child.once('message', () => resolve(child))
    child.once('exit', (code) => reject(new Error(`server exited with ${code}`)))
  })
}

function run(opts: autocannon.Options): Promise<autocannon.Result> {
  return new Promise((resolve, reject) => autocannon({ duration: DURATION, connections: 10, ...opts }, (err, res) => (err ? reject(err) : resolve(res))))
}

async function signIn(base: string): Promise<{ cookie: string; csrf: string; anonCookie: string }> {
  const login = await fetch(`${base}/login`)
  const anonCookie = login.headers.get('set-cookie')!.split(';')[0]!
  const csrf = /name="_csrf" value="([^"]+)"/.exec(await login.text())![1]!
  const res = await fetch(`${base}/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { cookie: anonCookie, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ _csrf: csrf, username: 'bench@bench.example', password: PASSWORD }),
  })
  if (res.status !== 303) throw new Error(`sign-in failed: ${res.status}`)
  return { cookie: res.headers.get('set-cookie')!.split(';')[0]!, csrf, anonCookie }
}

export interface Row { name: string; rps: number; p99: number; note?: string }
export function printRows(title: string, rows: Row[]): void {
  console.log(`\n${title}`)
  for (const r of rows) console.log(`  ${r.name.padEnd(52)} ${r.rps.toFixed(0).padStart(7)} req/s   p99 ${String(r.p99).padStart(4)} ms${r.note ? `   ${r.note}` : ''}`)
}

async function main() {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'mssp-bench-'))
  const config = loadConfig({ DATA_DIR: dataDir })
  const { db } = openDatabase({ dataDir })
  await migrateToLatest(db)
  await createAdministrator(db, { username: 'bench@bench.example', name: 'Bench', email: null, password: PASSWORD })
  await db.destroy()
  void config

  const portal = await start(['portal', dataDir, '39181'])
  const bare = await start(['bare', '39182'])
  const base = 'http://127.0.0.1:39181'
  try {
    const { cookie, csrf, anonCookie } = await signIn(base)
    const bareRes = await run({ url: 'http://127.0.0.1:39182/hello' })
    const pageRes = await run({ url: `${base}/accounts`, headers: { cookie } })
    if (pageRes.non2xx) throw new Error(`the Accounts page answered ${pageRes.non2xx} non-2xx responses`)
    // The page while 20 sign-ins run at once (argon2 at m=19456 KiB, t=2).
    const [busyPage, signIns] = await Promise.all([
      run({ url: `${base}/accounts`, headers: { cookie } }),
      run({
        url: `${base}/login`, connections: 20, method: 'POST',
        headers: { cookie: anonCookie, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ _csrf: csrf, username: 'bench@bench.example', password: PASSWORD }).toString(),
      }),
    ])
    printRows(`Foundation (SQLite, ${DURATION}s each, ${os.availableParallelism()} cores)`, [
      { name: 'bare Fastify route (baseline)', rps: bareRes.requests.average, p99: bareRes.latency.p99 },
      { name: 'signed-in Accounts page', rps: pageRes.requests.average, p99: pageRes.latency.p99, note: `${(pageRes.requests.average / bareRes.requests.average).toFixed(2)}x of baseline throughput` },
      { name: 'signed-in Accounts page during 20 concurrent sign-ins', rps: busyPage.requests.average, p99: busyPage.latency.p99, note: `p99 ${(busyPage.latency.p99 / Math.max(pageRes.latency.p99, 1)).toFixed(2)}x of idle (target <= 3x)` },
      { name: '  sign-ins completed meanwhile', rps: signIns.requests.average, p99: signIns.latency.p99 },
    ])
  } finally {
    portal.kill()
    bare.kill()
    fs.rmSync(dataDir, { recursive: true, force: true })
  }
}

await main()
