// Child processes for the bench, so that the load generator does not share their event loop.
//   portal <dataDir> [pgSchema]  the real portal (on PostgreSQL when DATABASE_URL is set)
//   bare                         a bare Fastify route, the machine's ceiling
// Each listens on a free loopback port and sends it to the parent.
import Fastify from 'fastify'
import type { AddressInfo } from 'node:net'
import { loadConfig } from '../src/config.ts'
import { buildApp } from '../src/app.ts'

const [kind, dataDir, pgSchema] = process.argv.slice(2)
const app = kind === 'bare'
  ? Fastify().get('/hello', async () => ({ hello: 'world' }))
  : await buildApp(loadConfig({ ...process.env, DATA_DIR: dataDir, PORT: '0', LOG_LEVEL: 'warn' }), pgSchema ? { pgSchema } : {})
await app.listen({ port: 0, host: '127.0.0.1' })
process.send?.({ port: (app.server.address() as AddressInfo).port })
