import path from 'node:path'
// Child processes for the benchmarks, so that the load generator does not share their event loop.
//   portal <dataDir> <port>  the real portal on SQLite
//   bare <port>              a bare Fastify route, the machine's baseline
import Fastify from 'fastify'
import type BetterSqlite from 'better-sqlite3'
import { loadConfig } from '../src/config.ts'
import { buildApp } from '../src/app.ts'

const [kind, a, b] = process.argv.slice(2)
if (kind === 'bare') {
  const app = Fastify()
  app.get('/hello', async () => ({ hello: 'world' }))
  await app.listen({ port: Number(a), host: '127.0.0.1' })
} else if (kind === 'minimal' || kind === 'minimal-rows') {
  // The same work as the Accounts page without the portal around it: the same queries and
  // the same rows template (views/accounts/_results.eta), no session, no plugins, no layout.
  // `minimal-rows` reads its rows as the portal does (raw arrays made into rows by rowMaker,
  // src/db/index.ts) rather than as better-sqlite3 builds them: against it, the portal's
  // own overhead shows (for reference; the target is against `minimal`).
  const SQLite = (await import('better-sqlite3')).default
  const { Eta } = await import('eta')
  const fmt = await import('../src/lib/format.ts')
  const { LICENSED_APPS, appLabel, parseApps } = await import('../src/areas/accounts/licensed-apps.ts')
  const { SQLITE_CACHE_KIB } = await import('../src/db/index.ts')
  const db = new SQLite(a!, { readonly: true })
  db.pragma(`cache_size = -${SQLITE_CACHE_KIB}`) // the portal's page cache
  const eta = new Eta({ views: path.resolve(import.meta.dirname, '../views'), cache: true, autoEscape: true })
  const select = 'select accounts.*, logos.uuid as logo_uuid, logos.name as logo_name from accounts left join logos on logos.id = accounts.logo_id'
  const order = 'order by accounts.container_name, accounts.id'
  const count = db.prepare('select count(*) as n from accounts')
  const page = db.prepare(`${select} ${order} limit 50`)
  // The same queries the portal runs for a one-word search (listAccountsPage in
  // src/areas/accounts/repository.ts): up to COUNT_CAP + 1 trigram matches' ids; as few as
  // that, the page by those ids; more, a window of the sort order first, then the sort index.
  const { COUNT_CAP } = await import('../src/areas/accounts/service.ts')
  const { SEARCH_WINDOW_ROWS } = await import('../src/areas/accounts/repository.ts')
  const matchIds = db.prepare(`select count(*) as n, json_group_array(id) as ids from (select rowid as id from accounts_fts where accounts_fts match ? limit ${COUNT_CAP + 1})`)
  const pageByIds = db.prepare(`${select} where accounts.id in (select accounts.id from accounts where accounts.id in (select value from json_each(?)) ${order} limit 50 offset 0) ${order}`)
  const pageWalk = db.prepare(`${select} where +accounts.id in (select rowid from accounts_fts where accounts_fts match ?) ${order} limit 50 offset 0`)
  const pageWindow = db.prepare(`${select} where accounts.id in (select id from (select id, search_text, container_name from accounts ${order.replaceAll('accounts.', '')} limit ${SEARCH_WINDOW_ROWS}) as candidates
    where candidates.search_text like ? order by candidates.container_name, candidates.id limit 50 offset 0) ${order}`)
  const { rowMaker } = await import('../src/db/index.ts')
  const readers = new Map<BetterSqlite.Statement, (values: unknown[]) => Record<string, unknown>>()
  function read(statement: BetterSqlite.Statement, ...values: unknown[]): unknown[] {
    if (kind === 'minimal') return statement.all(...values)
    let makeRow = readers.get(statement)
    if (!makeRow) readers.set(statement, (makeRow = rowMaker(statement.columns().map((c) => c.name))))
    return (statement.raw(true).all(...values) as unknown[][]).map(makeRow)
  }
  function search(q: string) {
    const { n, ids } = matchIds.get(`"${q}"`) as { n: number; ids: string }
    if (n <= COUNT_CAP) return { total: n, more: false, accounts: n ? read(pageByIds, ids) : [] }
    let accounts = read(pageWindow, `%${q}%`)
    if (accounts.length < 50) accounts = read(pageWalk, `"${q}"`)
    return { total: COUNT_CAP, more: true, accounts }
  }

  const app = Fastify()
  app.get('/accounts', async (request, reply) => {
    const q = (request.query as { q?: string }).q ?? ''
    const { total, more, accounts } = q ? search(q) : { total: (count.get() as { n: number }).n, more: false, accounts: read(page) }
    const html = eta.render('accounts/_results', {
      accounts, total, more, page: 1, pages: Math.ceil(total / 50), q: { q, sort: 'container_name', dir: 'asc' }, state: { q },
      apps: LICENSED_APPS, appLabel, parseApps, pageSize: 50, ssoReason: () => 'This account has no instance URL yet.',
      isAdmin: true, csrf: () => 'token', fmt,
    })
    // Sent as bytes encoded once, as the portal sends its pages (src/plugins/views.ts).
    return reply.type('text/html; charset=utf-8').send(Buffer.from(`<!doctype html><html><head><title>Accounts</title></head><body><h1>Accounts</h1>${html}</body></html>`))
  })
  await app.listen({ port: Number(b), host: '127.0.0.1' })
} else if (kind === 'portal') {
  const config = loadConfig({ ...process.env, DATA_DIR: a, PORT: b, LOG_LEVEL: 'warn', API_RATE_LIMIT_PER_MINUTE: '1000000', SIGNIN_RATE_LIMIT_PER_MINUTE: '100000' })
  const app = await buildApp(config)
  await app.listen({ port: config.port, host: '127.0.0.1' })
}
process.send?.('ready')
