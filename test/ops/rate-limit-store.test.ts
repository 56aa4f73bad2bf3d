import t from 'tap'
import Fastify from 'fastify'
import rateLimit from '@fastify/rate-limit'
import { type Kysely, sql } from 'kysely'
import { databaseRateLimitStore } from '../../src/ops/rate-limit-store.ts'
import { advanceClock } from '../helper.ts'
import { sleep, twoConnections } from '../support/portal-process.ts'

const dialects = process.env.TEST_DATABASE_URL ? (['sqlite', 'postgres'] as const) : (['sqlite'] as const)

type Store = {
  incr(key: string, cb: (err: Error | null, r?: { current: number; ttl: number }) => void, timeWindow: number, max: number): void
  read(key: string, cb: (err: Error | null, r?: { current: number; ttl: number }) => void): void
  child(opts: object): Store
}

function make(db: Kysely<any>, params: object = {}, namespace?: string): Store {
  const Ctor = databaseRateLimitStore(db, { namespace }) as unknown as new (p: object) => Store
  return new Ctor(params)
}

const incr = (s: Store, key: string, window = 60_000, max = 10) =>
  new Promise<{ current: number; ttl: number }>((resolve, reject) => s.incr(key, (err, r) => (err ? reject(err) : resolve(r!)), window, max))
const read = (s: Store, key: string) => new Promise<{ current: number; ttl: number }>((resolve, reject) => s.read(key, (err, r) => (err ? reject(err) : resolve(r!))))

for (const dialect of dialects) {
  t.test(`${dialect}: the database rate-limit store`, async (t) => {
    t.test('counts per key within a window, shared by two connections, then starts a new window', async (t) => {
      const [a, b] = await twoConnections(t, dialect)
      const sa = make(a)
      const sb = make(b)
      const first = await incr(sa, 'ip:10.0.0.1', 400)
      t.equal(first.current, 1)
      t.ok(first.ttl > 0 && first.ttl <= 400, `ttl ${first.ttl}`)
      t.equal((await incr(sb, 'ip:10.0.0.1', 400)).current, 2, 'the other process sees the same counter')
      t.equal((await incr(sa, 'ip:10.0.0.1', 400)).current, 3)
      t.equal((await incr(sb, 'ip:10.0.0.2', 400)).current, 1, 'another key has its own')
      t.same((await read(sb, 'ip:10.0.0.1')).current, 3, 'read does not count')
      t.same((await read(sb, 'ip:10.0.0.1')).current, 3)
      advanceClock(t, 450)
      t.same(await read(sa, 'ip:10.0.0.1'), { current: 0, ttl: 0 }, 'an ended window reads as empty')
      const fresh = await incr(sb, 'ip:10.0.0.1', 400)
      t.equal(fresh.current, 1, 'a new window starts at 1')
      t.ok(fresh.ttl > 300, 'with a whole window ahead')
      if (dialect === 'postgres') {
        const { rows } = await sql<{ p: string }>`select relpersistence as p from pg_class where oid = 'rate_limits'::regclass`.execute(a)
        t.equal(rows[0]!.p, 'u', 'an UNLOGGED table: counting costs no WAL write')
      }
    })

    t.test('concurrent increments from two connections are never lost', async (t) => {
      const [a, b] = await twoConnections(t, dialect)
      const stores = [make(a), make(b)]
      const results = await Promise.all(Array.from({ length: 60 }, (_, i) => incr(stores[i % 2]!, 'key:AK1')))
      t.same(results.map((r) => r.current).sort((x, y) => x - y), Array.from({ length: 60 }, (_, i) => i + 1), 'each hit got its own count')
    })

    t.test('routes with their own limits and namespaces have their own counters', async (t) => {
      const [a] = await twoConnections(t, dialect)
      const api = make(a, {}, 'api')
      const signIn = make(a, {}, 'sign-in')
      const route = api.child({ routeInfo: { method: 'POST', url: '/login' } })
      await incr(api, 'ip:1')
      await incr(api, 'ip:1')
      t.equal((await incr(signIn, 'ip:1')).current, 1)
      t.equal((await incr(route, 'ip:1')).current, 1)
      t.equal((await incr(api, 'ip:1')).current, 3)
      const long = 'k'.repeat(5000)
      t.equal((await incr(api, long)).current, 1, 'an over-long key is shortened, not refused')
      t.equal((await incr(api, long)).current, 2)
    })

    t.test('continueExceeding restarts the window while over the limit; exponentialBackoff is refused', async (t) => {
      const [a] = await twoConnections(t, dialect)
      const s = make(a, { continueExceeding: true })
      await incr(s, 'k', 300, 1)
      advanceClock(t, 150)
      const over = await incr(s, 'k', 300, 1)
      t.equal(over.current, 2)
      t.ok(over.ttl > 250, `the window restarted (${over.ttl} ms left)`)
      t.throws(() => make(a, { exponentialBackoff: true }), /exponentialBackoff/)
    })

    t.test('expired rows are cleaned up now and then', async (t) => {
      const [a] = await twoConnections(t, dialect)
      const Ctor = databaseRateLimitStore(a, { cleanupEveryMs: 100 }) as unknown as new (p: object) => Store
      const s = new Ctor({})
      for (let i = 0; i < 20; i++) await incr(s, `old:${i}`, 50)
      advanceClock(t, 150)
      await incr(s, 'new', 60_000)
      await sleep(100)
      const rows = await a.selectFrom('rate_limits').select('key').execute()
      t.same(rows.map((r) => r.key), ['default|new'], 'only the live row is left')
    })

    t.test('@fastify/rate-limit with this store: one limit across two servers', async (t) => {
      const [a, b] = await twoConnections(t, dialect)
      const servers = await Promise.all(
        [a, b].map(async (db) => {
          const app = Fastify()
          await app.register(rateLimit, { max: 5, timeWindow: 60_000, store: databaseRateLimitStore(db, { namespace: 'api' }) })
          app.get('/x', async () => ({ ok: true }))
          app.get('/own', { config: { rateLimit: { max: 2, timeWindow: 60_000 } } }, async () => ({ ok: true }))
          t.teardown(() => app.close())
          return app
        }),
      )
      const codes: number[] = []
      for (let i = 0; i < 8; i++) {
        const res = await servers[i % 2]!.inject({ method: 'GET', url: '/x' })
        codes.push(res.statusCode)
        if (i === 0) t.equal(res.headers['x-ratelimit-remaining'], '4')
      }
      t.same(codes, [200, 200, 200, 200, 200, 429, 429, 429], 'five in all, whichever server answers')
      const own: number[] = []
      for (let i = 0; i < 3; i++) own.push((await servers[(i + 1) % 2]!.inject({ method: 'GET', url: '/own' })).statusCode)
      t.same(own, [200, 200, 429], "a route's own limit counts apart")
    })
  })
}
