// The start-up bench's baseline (bench/start.ts): a bare Fastify app that opens the portal's
// SQLite file (DATA_DIR/portal.sqlite) and answers /login with a fixed page, on PORT.
// Plain JavaScript, started the way the portal is, so both pay the same Node start-up.
import path from 'node:path'
import Fastify from 'fastify'
import SQLite from 'better-sqlite3'

// BARE_SQLITE_BINDING: better-sqlite3's addon built for another Node (the single executable's).
const db = new SQLite(path.join(process.env.DATA_DIR ?? 'data', 'portal.sqlite'), { nativeBinding: process.env.BARE_SQLITE_BINDING || undefined })
db.pragma('journal_mode = WAL')
const page = `<!doctype html><html><head><title>Sign in</title></head><body><form method="post" action="/login">
<input name="username"><input name="password" type="password"><button>Sign in</button></form></body></html>`
const app = Fastify()
app.get('/login', async (_request, reply) => reply.type('text/html; charset=utf-8').send(page))
app.get('/healthz', async () => ({ status: 'ok', users: db.prepare('select count(*) as n from users').get().n }))
await app.listen({ port: Number(process.env.PORT ?? 3000), host: process.env.HOST ?? '127.0.0.1' })
for (const signal of ['SIGTERM', 'SIGINT']) process.once(signal, () => void app.close().then(() => process.exit(0)))
