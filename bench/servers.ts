import path from 'node:path'
// Child processes for the benchmarks, so that the load generator does not share their event loop.
//   portal <dataDir> <port>  the real portal on SQLite
//   bare <port>              a bare Fastify route, the machine's baseline
import Fastify from 'fastify'
import { loadConfig } from '../src/config.ts'
import { buildApp } from '../src/app.ts'

const [kind, a, b] = process.argv.slice(2)
if (kind === 'bare') {
  const app = Fastify()
  app.get('/hello', async () => ({ hello: 'world' }))
  await app.listen({ port: Number(a), host: '127.0.0.1' })
} else if (kind === 'minimal') {
  // The same work as the Accounts page without the portal around it: the same queries and
  // the same rows template (views/accounts/_results.eta), no session, no plugins, no layout.
  const SQLite = (await import('better-sqlite3')).default
  const { Eta } = await import('eta')
  const fmt = await import('../src/lib/format.ts')
  const { LICENSED_APPS, appLabel, parseApps } = await import('../src/areas/accounts/licensed-apps.ts')
  const db = new SQLite(a!, { readonly: true })
  const eta = new Eta({ views: path.resolve(import.meta.dirname, '../views'), cache: true, autoEscape: true })
  const select = 'select accounts.*, logos.uuid as logo_uuid, logos.name as logo_name from accounts left join logos on logos.id = accounts.logo_id'
  const count = db.prepare('select count(*) as n from accounts')
  const page = db.prepare(`${select} order by accounts.container_name, accounts.id limit 50`)
  // The same queries the portal runs for a search (see src/areas/accounts/repository.ts).
  const countSearch = db.prepare('select count(*) as n from accounts_fts where accounts_fts match ?')
  const pageSearchSorted = db.prepare(`${select} where accounts.id in (select rowid from accounts_fts where accounts_fts match ?) order by accounts.container_name, accounts.id limit 50`)
  const pageSearchIndexed = db.prepare(`${select} where +accounts.id in (select rowid from accounts_fts where accounts_fts match ?) order by accounts.container_name, accounts.id limit 50`)
  const app = Fastify()
  app.get('/accounts', async (request, reply) => {
    const q = (request.query as { q?: string }).q ?? ''
    const total = q ? (countSearch.get(`"${q}"`) as { n: number }).n : (count.get() as { n: number }).n
    const accounts = q ? (total >= 1000 ? pageSearchIndexed : pageSearchSorted).all(`"${q}"`) : page.all()
    const html = eta.render('accounts/_results', {
      accounts, total, page: 1, pages: Math.ceil(total / 50), q: { q, sort: 'container_name', dir: 'asc' }, state: { q },
      apps: LICENSED_APPS, appLabel, parseApps, pageSize: 50, ssoReason: () => 'This account has no instance URL yet.',
      isAdmin: true, csrf: () => 'token', fmt,
    })
    return reply.type('text/html').send(`<!doctype html><html><head><title>Accounts</title></head><body><h1>Accounts</h1>${html}</body></html>`)
  })
  await app.listen({ port: Number(b), host: '127.0.0.1' })
} else if (kind === 'portal') {
  const config = loadConfig({ ...process.env, DATA_DIR: a, PORT: b, LOG_LEVEL: 'warn', API_RATE_LIMIT_PER_MINUTE: '1000000', SIGNIN_RATE_LIMIT_PER_MINUTE: '100000' })
  const app = await buildApp(config)
  await app.listen({ port: config.port, host: '127.0.0.1' })
}
process.send?.('ready')
