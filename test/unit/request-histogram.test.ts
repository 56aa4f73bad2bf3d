import t from 'tap'
import { Histogram, Registry } from 'prom-client'
import { RequestHistogram } from '../../src/ops/request-histogram.ts'

const buckets = [0.005, 0.01, 0.1, 1]
const observations: Array<[string, string, number]> = [
  ['GET', '/accounts', 0.004], ['GET', '/accounts', 0.01], ['GET', '/accounts', 0.5], ['GET', '/accounts', 3],
  ['POST', '/login', 0.02], ['GET', '/accounts', 0.0001],
]

t.test('scraped exactly as prom-client writes its own histogram', async (t) => {
  const ours = new Registry()
  const theirs = new Registry()
  const fast = new RequestHistogram({ name: 'latency_seconds', help: 'Latency.', labelNames: ['method', 'route'], buckets, registers: [ours] })
  const reference = new Histogram({ name: 'latency_seconds', help: 'Latency.', labelNames: ['method', 'route'], buckets, registers: [theirs] })
  for (const [method, route, seconds] of observations) {
    if (route === '/login') fast.series(['POST', '/login'])(seconds)
    else fast.observe({ route, method }, seconds)
    reference.observe({ method, route }, seconds)
  }
  t.equal(await ours.metrics(), await theirs.metrics())
  t.match(await ours.metrics(), /latency_seconds_bucket\{le="0.01",method="GET",route="\/accounts"\} 3/)
  t.match(await ours.metrics(), /latency_seconds_count\{method="GET",route="\/accounts"\} 5/)
})

t.test('a reset zeroes every series, and recorders handed out before it still count', async (t) => {
  const registry = new Registry()
  const fast = new RequestHistogram({ name: 'latency_seconds', help: 'Latency.', labelNames: ['route'], buckets, registers: [registry] })
  const record = fast.series(['/healthz'])
  record(0.002)
  registry.resetMetrics()
  t.match(await registry.metrics(), /latency_seconds_count\{route="\/healthz"\} 0/)
  record(0.002)
  record(Number.NaN) // not a duration: ignored, as a broken clock must not break a request
  t.match(await registry.metrics(), /latency_seconds_count\{route="\/healthz"\} 1/)
  t.same(fast.counts(), [{ labels: { route: '/healthz' }, value: 1 }])
})
