// `npm run bench [-- growth|ceiling|contention|postgres|start ...]`: the speed goals of issues 23
// and 24 (start: bench/start.ts),
// each printed as `name: measured (goal) ok|SHORT`. Every goal is a ratio of figures taken in
// the same run (this machine's speed drifts; ratios much less). Real portal processes on
// loopback, bounded loads (autocannon, a few seconds each). BENCH_MILLION=1 adds 1,000,000
// accounts to the growth goal (a minute or two more of seeding); BENCH_LARGE=20000 shrinks the
// large size while working on the bench; BENCH_DATABASE_URL names another PostgreSQL database.
import { fork, type ChildProcess } from 'node:child_process'
import pg from 'pg'
import { ALL_CORES, cpuMicros, load, memoryMB, percentile, pin, resetPeak } from './measure.ts'
import { startGoals } from './start.ts'
import { assignedCount, PASSWORD, PG_URL, prepareDataset, RARE_WORD, SECRETS_KEY, USERS, type Dataset } from './seed.ts'

const SECTIONS = ['growth', 'ceiling', 'contention', 'postgres', 'start'] as const
const chosen = process.argv.slice(2)
for (const name of chosen) if (!(SECTIONS as readonly string[]).includes(name)) throw new Error(`unknown section ${name}: choose from ${SECTIONS.join(', ')}`)
const sections = chosen.length ? chosen : SECTIONS
const MILLION = process.env.BENCH_MILLION === '1'
const SMALL = 1_000
const LARGE = Number(process.env.BENCH_LARGE ?? 100_000) // smaller only while working on the bench

// ---- results -------------------------------------------------------------------------------

let short = 0
function report(name: string, measured: string, goal: string, ok: boolean): void {
  if (!ok) short++
  console.log(`${name}: ${measured} (${goal}) ${ok ? 'ok' : 'SHORT'}`)
}
const ms = (micros: number) => `${(micros / 1000).toFixed(2)} ms`
const k = (n: number) => (n >= 1_000_000 ? `${n / 1_000_000}M` : `${n / 1000}k`)

// ---- servers ---------------------------------------------------------------------------------

interface Server {
  child: ChildProcess
  base: string
  dataset?: Dataset
  cookies: Map<string, string>
  /** PostgreSQL's backends serving this portal: their CPU is part of its cost. */
  applicationName?: string
}
const servers: Server[] = []
const datasets: Dataset[] = []
let pgPool: pg.Pool | undefined

function start(args: string[], env: Record<string, string> = {}): Promise<Server> {
  const child = fork(new URL('./servers.ts', import.meta.url).pathname, args, {
    execArgv: ['--import', 'tsx'],
    stdio: 'inherit',
    env: { ...process.env, SECRETS_KEY, SESSION_KEY: 'c'.repeat(64), API_RATE_LIMIT_PER_MINUTE: '1000000', SIGNIN_RATE_LIMIT_PER_MINUTE: '100000', ...env },
  })
  return new Promise((resolve, reject) => {
    child.once('message', (m) => {
      const server: Server = { child, base: `http://127.0.0.1:${(m as { port: number }).port}`, cookies: new Map() }
      servers.push(server)
      resolve(server)
    })
    child.once('exit', (code) => reject(new Error(`server ${args.join(' ')} exited with ${code}`)))
  })
}

const portals = new Map<string, Promise<Server>>()
/** The portal on `accounts` accounts, seeded and started once per run. */
function portal(dialect: 'sqlite' | 'postgres', accounts: number): Promise<Server> {
  const key = `${dialect}:${accounts}`
  let started = portals.get(key)
  if (!started) {
    started = (async () => {
      const t0 = performance.now()
      const dataset = await prepareDataset(dialect, accounts)
      datasets.push(dataset)
      console.log(`  (seeded ${accounts.toLocaleString('en-US')} accounts on ${dialect} in ${((performance.now() - t0) / 1000).toFixed(1)} s)`)
      const applicationName = dataset.pgSchema
      const env: Record<string, string> = applicationName ? { DATABASE_URL: `${PG_URL}${PG_URL.includes('?') ? '&' : '?'}application_name=${applicationName}` } : {}
      const server = await start(['portal', dataset.dataDir, ...(dataset.pgSchema ? [dataset.pgSchema] : [])], env)
      server.dataset = dataset
      server.applicationName = applicationName
      for (const username of Object.values(USERS)) server.cookies.set(username, (await signIn(server.base, username)).cookie)
      return server
    })()
    portals.set(key, started)
  }
  return started
}

async function signIn(base: string, username: string): Promise<{ cookie: string; csrf: string; anonCookie: string }> {
  const login = await fetch(`${base}/login`)
  const anonCookie = login.headers.get('set-cookie')!.split(';')[0]!
  const csrf = /name="_csrf" value="([^"]+)"/.exec(await login.text())![1]!
  const res = await fetch(`${base}/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { cookie: anonCookie, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ _csrf: csrf, username, password: PASSWORD }),
  })
  if (res.status !== 303) throw new Error(`sign-in of ${username} failed: ${res.status}`)
  return { cookie: res.headers.get('set-cookie')!.split(';')[0]!, csrf, anonCookie }
}

/** The server's CPU time so far, with that of PostgreSQL's backends serving it. */
async function serverCpu(server: Server): Promise<Map<number, number>> {
  const pids = [server.child.pid!]
  if (server.applicationName) {
    pgPool ??= new pg.Pool({ connectionString: PG_URL, max: 1 })
    const { rows } = await pgPool.query<{ pid: number }>('select pid from pg_stat_activity where application_name = $1', [server.applicationName])
    pids.push(...rows.map((r) => r.pid))
  }
  return new Map(pids.map((pid) => [pid, cpuMicros(pid)]))
}
/** CPU microseconds between two readings (a backend that appeared meanwhile counts from its start). */
function cpuBetween(before: Map<number, number>, after: Map<number, number>): number {
  let sum = 0
  for (const [pid, micros] of after) sum += micros - (before.get(pid) ?? 0)
  return sum
}

// ---- requests --------------------------------------------------------------------------------

interface Request { path: string; headers: Record<string, string> }
type Who = keyof typeof USERS
const SEARCHES = [['common word', 'logistics'], ['rare word', RARE_WORD], ['one character', 'q'], ['two characters', 'zq']] as const

/** The requests of the growth goal for one user on one server. */
function requests(server: Server, who: Who): Array<[string, Request]> {
  const cookie = { cookie: server.cookies.get(USERS[who])! }
  const list: Array<[string, Request]> = [['Accounts page', { path: '/accounts', headers: cookie }]]
  for (const [label, q] of SEARCHES) list.push([`search ${label} "${q}"`, { path: `/accounts?q=${encodeURIComponent(q)}`, headers: { ...cookie, 'hx-request': 'true' } }])
  // Account Details is an Administrator's page: the analysts get a 403 there.
  if (who === 'admin') list.push(['Account Details', { path: `/accounts/${server.dataset!.detailsUuid}/details`, headers: cookie }])
  list.push(['GET /api/mssp/accounts?limit=50', { path: '/api/mssp/accounts?limit=50', headers: { 'x-apikeys': server.dataset!.apiKeys[USERS[who]]! } }])
  return list
}

/**
 * Each request's CPU time (server and database) per answer, the servers loaded at once so they
 * see the same machine: a warm-up second, then `seconds` of two connections each.
 */
async function costs(targets: Array<{ server: Server; request: Request }>, seconds = 2): Promise<number[]> {
  const fire = (duration: number) => Promise.all(targets.map(({ server, request }) => load({ url: server.base + request.path, headers: request.headers, duration })))
  await fire(1)
  const before = await Promise.all(targets.map(({ server }) => serverCpu(server)))
  const results = await fire(seconds)
  const after = await Promise.all(targets.map(({ server }) => serverCpu(server)))
  return results.map((result, i) => {
    if (result.non2xx || result.errors) throw new Error(`${targets[i]!.request.path}: ${result.non2xx} non-2xx answers, ${result.errors} errors`)
    // None answered within the window (a request of seconds): its CPU so far is a lower bound.
    return cpuBetween(before[i]!, after[i]!) / Math.max(result.requests.total, 1)
  })
}

// ---- the goals -------------------------------------------------------------------------------

async function growth(dialect: 'sqlite' | 'postgres', sizes: number[]): Promise<void> {
  const [small, ...larger] = await Promise.all(sizes.map((n) => portal(dialect, n)))
  pinForLoad([small!, ...larger])
  try {
    for (const who of Object.keys(USERS) as Who[]) {
      const smallRequests = requests(small!, who)
      for (const [i, [label, request]] of smallRequests.entries()) {
        const targets = [{ server: small!, request }, ...larger.map((server) => ({ server, request: requests(server, who)[i]![1] }))]
        const [base, ...grown] = await costs(targets)
        for (const [j, cost] of grown.entries()) {
          const n = sizes[j + 1]!
          const limit = n >= 1_000_000 ? 2 : 1.3
          const assigned = assignedCount(who, n)
          const user = assigned === null ? 'Administrator' : `user with ${assignedCount(who, SMALL)}→${assigned.toLocaleString('en-US')} assigned`
          report(`growth ${dialect} ${label}, ${user}, ${k(n)} vs ${k(sizes[0]!)}`, `${(cost / base!).toFixed(2)}x (${ms(base!)} → ${ms(cost)} CPU per request)`, `<= ${limit}x`, cost / base! <= limit)
        }
      }
    }
  } finally {
    unpin([small!, ...larger])
  }
}

/** Servers on core 1, this process (the load generator) on core 0: they do not compete for a core. */
function pinForLoad(list: Server[]): boolean {
  return pin(process.pid, '0') && list.every((server) => pin(server.child.pid!, '1'))
}
function unpin(list: Server[]): void {
  for (const pid of [process.pid, ...list.map((server) => server.child.pid!)]) pin(pid, ALL_CORES)
}

async function ceiling(): Promise<void> {
  const [page, bare] = await Promise.all([portal('sqlite', LARGE), start(['bare'])])
  const pinned = pinForLoad([page, bare])
  try {
    const targets = [
      { server: page, url: `${page.base}/accounts`, headers: { cookie: page.cookies.get(USERS.admin)! } },
      { server: bare, url: `${bare.base}/hello`, headers: {} },
    ]
    const round = async (duration: number) => {
      const before = targets.map((t) => cpuMicros(t.server.child.pid!))
      const results = await Promise.all(targets.map((t) => load({ url: t.url, headers: t.headers, connections: 10, duration })))
      return results.map((result, i) => {
        if (result.non2xx) throw new Error(`${targets[i]!.url}: ${result.non2xx} non-2xx answers`)
        return { requests: result.requests.total, cpu: cpuMicros(targets[i]!.server.child.pid!) - before[i]! }
      })
    }
    await round(2)
    const rounds = [await round(4), await round(4), await round(4)]
    const perCpuSecond = (j: number) => (rounds.reduce((s, r) => s + r[j]!.requests, 0) / rounds.reduce((s, r) => s + r[j]!.cpu, 0)) * 1e6
    const ratio = perCpuSecond(0) / perCpuSecond(1)
    report(`ceiling Accounts page at ${k(LARGE)} vs bare Fastify route${pinned ? ', both on core 1' : ', unpinned'}`,
      `${ratio.toFixed(3)}x (${perCpuSecond(0).toFixed(0)} vs ${perCpuSecond(1).toFixed(0)} req per CPU-second)`, '>= 0.02x', ratio >= 0.02)
  } finally {
    unpin([page, bare])
  }
}

async function contention(): Promise<void> {
  const server = await portal('sqlite', LARGE)
  const cookie = server.cookies.get(USERS.admin)!
  const page = () => load({ url: `${server.base}/accounts`, headers: { cookie }, connections: 4, duration: 5 })
  await load({ url: `${server.base}/accounts`, headers: { cookie }, duration: 1 })
  const idle = await page()
  // 20 sign-ins at once the whole time (argon2 at m=19456 KiB, t=2), each a fresh session.
  const { csrf, anonCookie } = await signIn(server.base, USERS.admin)
  const [busy, signIns] = await Promise.all([
    page(),
    load({
      url: `${server.base}/login`, connections: 20, duration: 5, method: 'POST',
      headers: { cookie: anonCookie, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ _csrf: csrf, username: USERS.admin, password: PASSWORD }).toString(),
    }),
  ])
  if (idle.non2xx || busy.non2xx || signIns['4xx'] || signIns['5xx']) throw new Error('non-2xx answers during the contention goal')
  const ratio = busy.latency.p99 / Math.max(idle.latency.p99, 1)
  report(`contention Accounts page p99 during 20 concurrent sign-ins (${signIns.requests.total} done)`, `${ratio.toFixed(2)}x (${idle.latency.p99} → ${busy.latency.p99} ms)`, '<= 3x idle', ratio <= 3)

  // CSV export: peak memory while it streams, and time against a tenth of the accounts.
  const tenth = await portal('sqlite', LARGE / 10)
  const exportOnce = async (s: Server) => {
    const pid = s.child.pid!
    resetPeak(pid)
    const before = memoryMB(pid).rss
    const t0 = performance.now()
    const res = await fetch(`${s.base}/accounts/export.csv`, { headers: { cookie: s.cookies.get(USERS.admin)! } })
    if (res.status !== 200) throw new Error(`CSV export answered ${res.status}`)
    let lines = 0
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      const buffer = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
      for (let at = buffer.indexOf(10); at !== -1; at = buffer.indexOf(10, at + 1)) lines++
    }
    return { seconds: (performance.now() - t0) / 1000, growth: memoryMB(pid).peak - before, lines }
  }
  await exportOnce(tenth)
  const small = [await exportOnce(tenth), await exportOnce(tenth), await exportOnce(tenth)]
  const large = [await exportOnce(server), await exportOnce(server), await exportOnce(server)]
  if (large[0]!.lines < LARGE) throw new Error(`the CSV export held ${large[0]!.lines} lines`)
  const growthMB = Math.max(...large.map((r) => r.growth))
  report(`contention CSV export of ${k(LARGE)} accounts, peak RSS growth`, `${growthMB.toFixed(1)} MB (largest of 3)`, '< 50 MB', growthMB < 50)
  const fastest = (runs: typeof small) => Math.min(...runs.map((r) => r.seconds))
  const ratio2 = fastest(large) / fastest(small)
  report(`contention CSV export time ${k(LARGE)} vs ${k(LARGE / 10)}`, `${ratio2.toFixed(2)}x (${fastest(small).toFixed(2)} → ${fastest(large).toFixed(2)} s, fastest of 3)`, '<= 11x', ratio2 <= 11)
}

async function postgres(): Promise<void> {
  const [lite, pgServer] = await Promise.all([portal('sqlite', LARGE), portal('postgres', LARGE)])
  // Throughput, each alone on the machine in turn (PostgreSQL's processes need the cores too), rounds alternated.
  for (const [label, request] of requests(lite, 'admin').slice(0, 1 + SEARCHES.length)) {
    const other = requests(pgServer, 'admin').find(([l]) => l === label)![1]
    const totals = [0, 0]
    const seconds = [0, 0]
    for (let round = 0; round < 3; round++) {
      for (const [j, [server, r]] of ([[lite, request], [pgServer, other]] as const).entries()) {
        const result = await load({ url: server.base + r.path, headers: r.headers, connections: 10, duration: round === 0 ? 1 : 2 })
        if (result.non2xx) throw new Error(`${server.base}${r.path}: ${result.non2xx} non-2xx answers`)
        if (round === 0) continue // warm-up
        totals[j]! += result.requests.total
        seconds[j]! += result.duration
      }
    }
    const [liteRps, pgRps] = [totals[0]! / seconds[0]!, totals[1]! / seconds[1]!]
    report(`postgres ${label}, Administrator, ${k(LARGE)}, vs SQLite`, `${(pgRps / liteRps).toFixed(2)}x (${pgRps.toFixed(0)} vs ${liteRps.toFixed(0)} req/s)`, '>= 0.5x', pgRps / liteRps >= 0.5)
  }
  await growth('postgres', [SMALL, LARGE])
}

/** Issue 24's start-up goals (bench/start.ts) on their own copy of the large dataset. */
async function start100k(): Promise<void> {
  const dataset = await prepareDataset('sqlite', LARGE)
  datasets.push(dataset)
  await startGoals(dataset, report)
}

// ---- main ------------------------------------------------------------------------------------

const t0 = performance.now()
try {
  for (const section of sections) {
    console.log(`\n# ${section}`)
    if (section === 'growth') await growth('sqlite', MILLION ? [SMALL, LARGE, 1_000_000] : [SMALL, LARGE])
    if (section === 'ceiling') await ceiling()
    if (section === 'contention') await contention()
    if (section === 'postgres') await postgres()
    if (section === 'start') await start100k()
  }
} finally {
  for (const server of servers) server.child.kill()
  await pgPool?.end()
  for (const dataset of datasets) await dataset.drop().catch((err) => console.error(`could not drop ${dataset.pgSchema ?? dataset.dataDir}: ${err}`))
}
console.log(`\n${short ? `${short} goal(s) SHORT` : 'every goal ok'} (${((performance.now() - t0) / 1000).toFixed(0)} s)`)
