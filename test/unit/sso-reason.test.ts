import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { instanceBase, interfaceFor, ssoUnavailableReason } from '../../src/areas/instances/service.ts'

// The Accounts page asks every row why single sign-on is unavailable; the answer must be the
// one the sign-on itself would give (instanceBase, interfaceFor).
t.test('the reason shown on a row agrees with what single sign-on would do', async (t) => {
  const stored = ['', 'vm', 'was', 'cs', 'vm,was', 'was,cs', 'vm,was,cs', 'vm,cs', 'xvm', 'vmx', 'wasp,csv', 'other']
  for (const demoInstance of [false, true]) {
    const app = { config: { demoInstance, baseUrl: 'http://portal.test' } } as unknown as FastifyInstance
    for (const instance_url of [null, 'https://customer.example']) {
      for (const licensed_apps of stored) {
        const account = { instance_url, licensed_apps }
        const expected = !instanceBase(app, account) ? 'This account has no instance URL yet.' : !interfaceFor(licensed_apps) ? 'This account has no licensed apps.' : null
        t.equal(ssoUnavailableReason(app, account), expected, `${JSON.stringify(account)}, demo instance ${demoInstance}`)
      }
    }
  }
})
