import t from 'tap'
import { formatExpiry, isoTime } from '../../src/areas/accounts/csv.ts'

// The export writes times and dates itself (toISOString per cell was a tenth of an export):
// the text must be exactly what toISOString gives.
t.test('isoTime writes what toISOString writes', async (t) => {
  const samples = [0, 1, 999, 1000, 86_399_999, 86_400_000, 951_782_400_000 /* 2000-02-29 */, 1_709_164_800_000 /* 2024-02-29 */, 4_107_542_399_999 /* 2100-02-28 end */, 253_402_300_799_999 /* 9999-12-31 */]
  for (let ms = -2e12; ms < 2.6e14; ms += 98_765_432_101) samples.push(ms)
  for (let ms = Date.now() - 1e9; ms < Date.now() + 1e9; ms += 7_777_777) samples.push(ms)
  samples.push(-1, 253_402_300_800_000, 1.5)
  let wrong = 0
  for (const ms of samples) if (isoTime(ms) !== new Date(ms).toISOString()) wrong++ || t.equal(isoTime(ms), new Date(ms).toISOString(), String(ms))
  t.equal(wrong, 0, `${samples.length} times`)
})

t.test('an expiry at midnight UTC is a date, any other a full time', async (t) => {
  t.equal(formatExpiry(Date.UTC(2027, 2, 31)), '2027-03-31')
  t.equal(formatExpiry(Date.UTC(2027, 2, 31, 0, 0, 0, 1)), '2027-03-31T00:00:00.001Z')
  t.equal(formatExpiry(Date.UTC(1969, 11, 31)), '1969-12-31')
  t.equal(formatExpiry(null), '')
})
