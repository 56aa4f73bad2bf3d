import t from 'tap'
import { type FailureCounter, databaseFailureCounter, memoryFailureCounter } from '../../src/ops/rate-limit-store.ts'
import { advanceClock, type Tap } from '../helper.ts'
import { twoConnections } from '../support/portal-process.ts'

const dialects = process.env.TEST_DATABASE_URL ? (['sqlite', 'postgres'] as const) : (['sqlite'] as const)

/** What every counter must do: count per key in a window, report the highest, forget after it. */
async function behaves(t: Tap & Pick<typeof import('tap').default, 'equal' | 'ok'>, one: FailureCounter, other: FailureCounter) {
  t.equal((await one.peak(['ip:a', 'key:k'])).count, 0, 'nothing counted yet')
  await one.add(['ip:a', 'key:k'])
  await other.add(['ip:b', 'key:k'])
  const peak = await other.peak(['ip:a', 'key:k'])
  t.equal(peak.count, 2, 'the key counted from both addresses (and both counters)')
  t.ok(peak.ttl > 0 && peak.ttl <= 400, `until the window ends (${peak.ttl} ms)`)
  t.equal((await one.peak(['ip:a'])).count, 1)
  t.equal((await one.peak(['ip:c'])).count, 0, 'another address has its own count')
  advanceClock(t, 450)
  t.equal((await one.peak(['ip:a', 'key:k'])).count, 0, 'an ended window counts nothing')
  await one.add(['key:k'])
  t.equal((await other.peak(['key:k'])).count, 1, 'a new window starts at 1')
}

for (const dialect of dialects) {
  t.test(`${dialect}: the database failure counter is shared by connections (processes)`, async (t) => {
    const [a, b] = await twoConnections(t, dialect)
    await behaves(t, databaseFailureCounter(a, 'f', 400), databaseFailureCounter(b, 'f', 400))
    t.equal((await databaseFailureCounter(a, 'other', 400).peak(['key:k'])).count, 0, 'namespaces are apart')
  })
}

t.test('the in-memory failure counter (one process) behaves the same and stays bounded', async (t) => {
  const counter = memoryFailureCounter(400)
  await behaves(t, counter, counter)
  const small = memoryFailureCounter(60_000, 100)
  for (let i = 0; i < 1000; i++) await small.add([`key:${i}`])
  t.equal((await small.peak(['key:0'])).count, 0, 'the oldest keys were dropped')
  t.equal((await small.peak(['key:999'])).count, 1, 'the newest kept')
})
