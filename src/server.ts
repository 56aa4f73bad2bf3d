import type { FastifyInstance } from 'fastify'
import { buildApp } from './app.ts'
import type { Config } from './config.ts'
import { bootstrapFirstAdministrator } from './lib/bootstrap.ts'

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
  let closing = false
  const shutdown = (signal: string) => {
    if (closing) return
    closing = true
    app.log.info({ signal }, 'shutting down')
    const force = setTimeout(() => process.exit(1), 10_000)
    force.unref()
    app.close().then(
      () => process.exit(0),
      () => process.exit(1),
    )
  }
  process.on('SIGTERM', () => shutdown('SIGTERM'))
  process.on('SIGINT', () => shutdown('SIGINT'))
  return app
}
