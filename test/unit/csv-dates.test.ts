import t from 'tap'
import { formatExpiry } from '../../src/areas/accounts/csv.ts'

t.test('an expiry at midnight UTC is a date, any other a full time', async (t) => {
  t.equal(formatExpiry(Date.UTC(2027, 2, 31)), '2027-03-31', 'midnight UTC: the date alone')
  t.equal(formatExpiry(Date.UTC(2027, 2, 31, 0, 0, 0, 1)), '2027-03-31T00:00:00.001Z', 'a millisecond past midnight: the full time')
  t.equal(formatExpiry(Date.UTC(1969, 11, 31)), '1969-12-31', 'before 1970: still a date')
  t.equal(formatExpiry(null), '', 'no expiry: an empty cell')
})
