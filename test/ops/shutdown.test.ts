import http from 'node:http'
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { closeGracefully, exitOnSignals } from '../../src/ops/shutdown.ts'
import { buildTestApp } from '../helper.ts'

/** A GET over a keep-alive agent: the connection stays open after the answer. */
function get(agent: http.Agent, port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, agent }, (res) => {
        let body = ''
        res.on('data', (d) => (body += d))
        res.on('end', () => resolve({ status: res.statusCode!, body }))
      })
      .on('error', reject)
  })
}

async function listening(t: Parameters<typeof buildTestApp>[0], setup?: (app: FastifyInstance) => void): Promise<{ app: FastifyInstance; port: number }> {
  const { app } = await buildTestApp(t, 'sqlite')
  setup?.(app)
  app.get('/slow', { config: { access: 'public' } }, async () => {
    await new Promise((r) => setTimeout(r, 300))
    return { done: true }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, port: (app.server.address() as { port: number }).port }
}

t.test('a request in progress finishes, then the close completes at once despite keep-alive', async (t) => {
  const { app, port } = await listening(t)
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 })
  t.teardown(() => agent.destroy())
  await Promise.all([get(agent, port, '/healthz'), get(agent, port, '/healthz')]) // two idle connections
  const slow = get(agent, port, '/slow')
  await new Promise((r) => setTimeout(r, 50))
  const started = Date.now()
  const code = await closeGracefully(app, { timeoutMs: 5_000 })
  const took = Date.now() - started
  t.equal(code, 0)
  t.same(await slow, { status: 200, body: '{"done":true}' }, 'the request in progress got its answer')
  t.ok(took < 1_500, `closed in ${took} ms, not after the keep-alive timeout`)
})

t.test('a close that takes too long gives exit code 1', async (t) => {
  const { app } = await listening(t, (app) => app.addHook('onClose', () => new Promise((r) => setTimeout(r, 500))))
  t.equal(await closeGracefully(app, { timeoutMs: 100 }), 1)
})

t.test('exitOnSignals: one signal, one graceful close, then exit', async (t) => {
  const { app } = await listening(t)
  const codes: number[] = []
  const uninstall = exitOnSignals(app, { signals: ['SIGUSR2'], exit: (c) => codes.push(c) })
  t.teardown(uninstall)
  process.emit('SIGUSR2', 'SIGUSR2')
  process.emit('SIGUSR2', 'SIGUSR2')
  await new Promise((r) => setTimeout(r, 300))
  t.same(codes, [0], 'exited once, with 0')
  t.notOk(app.server.listening, 'closed')
})

t.test('the drain: /readyz 503 at once, everything else served (closing its connection), then the close', async (t) => {
  const { app, port } = await listening(t)
  const agent = new http.Agent({ keepAlive: true, maxSockets: 2 })
  t.teardown(() => agent.destroy())
  t.equal((await get(agent, port, '/readyz')).status, 200)
  const closing = closeGracefully(app, { drainMs: 400, timeoutMs: 5_000 })
  const ready = await get(agent, port, '/readyz')
  t.same(ready, { status: 503, body: '{"status":"shutting down"}' }, '/readyz says 503 during the drain')
  const served = await new Promise<http.IncomingMessage>((resolve, reject) => http.get({ host: '127.0.0.1', port, path: '/healthz', agent }, resolve).on('error', reject))
  served.resume()
  t.equal(served.statusCode, 200, 'other requests are still served')
  t.equal(served.headers.connection, 'close', 'and their answers close the connection')
  t.ok(app.server.listening, 'still accepting during the drain')
  t.equal(await closing, 0)
  t.notOk(app.server.listening, 'closed after the drain')
})
