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
} else if (kind === 'portal') {
  const config = loadConfig({ ...process.env, DATA_DIR: a, PORT: b, LOG_LEVEL: 'warn', API_RATE_LIMIT_PER_MINUTE: '1000000' })
  const app = await buildApp(config)
  await app.listen({ port: config.port, host: '127.0.0.1' })
}
process.send?.('ready')
