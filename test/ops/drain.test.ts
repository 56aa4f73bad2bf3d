// SIGTERM under load: /readyz turns 503 at once, the portal keeps serving for
// SHUTDOWN_DRAIN_SECONDS, then stops accepting and answers what is in flight. No request
// sent before the drain ended may be reset (clients do not retry a reset POST) or refused.
import http from 'node:http'
import t from 'tap'
import { HttpClient, sleep, startPortal, tempDir } from '../support/portal-process.ts'

t.setTimeout(90_000)

const DRAIN_S = 2
const WORKERS = 8

interface Outcome {
  sentAt: number
  what: string
  status?: number
  error?: string
}

function send(agent: http.Agent | false, url: URL, method: string, headers: Record<string, string>, body?: string): Promise<Omit<Outcome, 'sentAt' | 'what'> & { connection?: string }> {
  return new Promise((resolve) => {
    const req = http.request(url, { method, agent, headers: { ...headers, ...(body ? { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)) } : {}) } }, (res) => {
      res.resume()
      res.on('end', () => resolve({ status: res.statusCode, connection: res.headers.connection }))
      res.on('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }))
    })
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }))
    req.setTimeout(15_000, () => req.destroy(new Error('timeout')))
    req.end(body)
  })
}

t.test(`SIGTERM under keep-alive load with SHUTDOWN_DRAIN_SECONDS=${DRAIN_S}: nothing reset, everything answered`, async (t) => {
  const portal = await startPortal(t, { dataDir: tempDir(t), env: { SHUTDOWN_DRAIN_SECONDS: String(DRAIN_S), API_RATE_LIMIT_PER_MINUTE: '1000000' } })
  const browser = new HttpClient(portal.baseUrl)
  t.equal((await browser.signIn()).status, 303)
  const keys = await browser.apiKeys()
  const base = new URL(portal.baseUrl)
  const at = (p: string) => new URL(p, base)

  const agent = new http.Agent({ keepAlive: true, maxSockets: WORKERS })
  t.teardown(() => agent.destroy())
  const outcomes: Outcome[] = []
  let sigtermAt = Infinity
  // Requests are sent until shortly before the drain ends (the signal takes a moment to arrive).
  const sending = () => Date.now() < sigtermAt + DRAIN_S * 1000 - 300
  async function worker(w: number): Promise<void> {
    for (let i = 0; sending(); i++) {
      const sentAt = Date.now()
      const post = i % 2 === 0
      const what = post ? 'POST /api/mssp/accounts' : 'GET /login'
      const result = post ? await send(agent, at('/api/mssp/accounts'), 'POST', keys, JSON.stringify({ container_name: `drain-${w}-${i}` })) : await send(agent, at('/login'), 'GET', {})
      outcomes.push({ sentAt, what, status: result.status, error: result.error })
    }
  }
  const load = Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)))
  await sleep(500)

  const exited = new Promise<number | null>((resolve) => portal.child.once('exit', (code) => resolve(code)))
  sigtermAt = Date.now()
  portal.child.kill('SIGTERM')
  await sleep(200)
  const ready = await send(false, at('/readyz'), 'GET', {})
  const live = await send(false, at('/healthz'), 'GET', {})

  // A request in flight when the drain ends: its body arrives half before, half after.
  const inFlight = new Promise<Omit<Outcome, 'sentAt' | 'what'>>((resolve) => {
    void sleep(DRAIN_S * 1000 - 700).then(() => {
      const body = JSON.stringify({ container_name: 'in-flight-at-drain-end' })
      const req = http.request(at('/api/mssp/accounts'), { method: 'POST', agent: false, headers: { ...keys, 'content-type': 'application/json', 'content-length': String(body.length) } }, (res) => {
        res.resume()
        res.on('end', () => resolve({ status: res.statusCode }))
      })
      req.on('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }))
      req.write(body.slice(0, 10))
      setTimeout(() => req.end(body.slice(10)), 1_200)
    })
  })

  await load
  const late = await inFlight
  const code = await exited

  t.equal(ready.status, 503, '/readyz answers 503 right after SIGTERM')
  t.equal(live.status, 200, '/healthz still answers 200 during the drain')
  t.equal(live.connection, 'close', 'answers during the drain close their keep-alive connection in good order')
  const duringDrain = outcomes.filter((o) => o.sentAt >= sigtermAt)
  t.ok(duringDrain.length >= WORKERS, `requests kept coming during the drain (${duringDrain.length} of ${outcomes.length})`)
  const resets = outcomes.filter((o) => o.error === 'ECONNRESET')
  t.equal(resets.length, 0, `no connection reset (of ${outcomes.length} requests, ${duringDrain.length} sent after SIGTERM)`)
  const wrong = outcomes.filter((o) => o.status !== 200)
  t.same(
    wrong.map((o) => `${o.what} +${o.sentAt - sigtermAt} ms: ${o.status ?? o.error}`),
    [],
    'every request sent before the drain ended was answered 200',
  )
  t.same(late, { status: 200 }, 'the request in flight when the drain ended got its answer')
  t.equal(code, 0, 'the portal exited 0')
})
