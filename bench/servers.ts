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
  // The same work as the Accounts page without the portal: count, 50 rows, an Eta table.
  const SQLite = (await import('better-sqlite3')).default
  const { Eta } = await import('eta')
  const db = new SQLite(a!, { readonly: true })
  const eta = new Eta({ views: import.meta.dirname, cache: true })
  const count = db.prepare('select count(*) as n from accounts')
  const page = db.prepare('select * from accounts order by container_name, id limit 50')
  // The same queries the portal runs for a search (see src/areas/accounts/repository.ts).
  const countSearch = db.prepare('select count(*) as n from accounts_fts where accounts_fts match ?')
  const pageSearchSorted = db.prepare('select * from accounts where id in (select rowid from accounts_fts where accounts_fts match ?) order by container_name, id limit 50')
  const pageSearchIndexed = db.prepare('select * from accounts where +id in (select rowid from accounts_fts where accounts_fts match ?) order by container_name, id limit 50')
  const app = Fastify()
  app.get('/accounts', async (request, reply) => {
    const q = (request.query as { q?: string }).q
    const total = q ? (countSearch.get(`"${q}"`) as { n: number }).n : (count.get() as { n: number }).n
    const rows = q ? (total >= 1000 ? pageSearchIndexed : pageSearchSorted).all(`"${q}"`) : page.all()
    return reply.type('text/html').send(eta.render('minimal', { total, rows }))
  })
  await app.listen({ port: Number(b), host: '127.0.0.1' })
} else if (kind === 'portal') {
  const config = loadConfig({ ...process.env, DATA_DIR: a, PORT: b, LOG_LEVEL: 'warn', API_RATE_LIMIT_PER_MINUTE: '1000000', SIGNIN_RATE_LIMIT_PER_MINUTE: '100000' })
  const app = await buildApp(config)
  await app.listen({ port: config.port, host: '127.0.0.1' })
}
process.send?.('ready')
