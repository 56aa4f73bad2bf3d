import type { FastifyInstance } from 'fastify'
import { buildApp } from './app.ts'
import type { Config } from './config.ts'
import { bootstrapFirstAdministrator } from './ops/bootstrap.ts'
import { exitOnSignals } from './ops/shutdown.ts'

/** Starts the portal and listens; only this module listens (tests use app.inject). */
export async function serve(config: Config): Promise<FastifyInstance> {
  const app = await buildApp(config)
  try {
    await bootstrapFirstAdministrator(app, (line) => process.stdout.write(line + '\n'))
  } catch (err) {
    await app.close()
    throw err
  }
  await app.listen({ port: config.port, host: config.host })
  // SIGTERM/SIGINT: /readyz 503, serve on for the drain period, then close (finishing the
  // requests in progress) and exit 0 (1 if closing takes more than 10 s).
  exitOnSignals(app, { drainMs: config.shutdownDrainSeconds * 1000 })
  return app
}
