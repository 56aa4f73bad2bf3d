import t from 'tap'
import type { FastifyInstance, LightMyRequestResponse } from 'fastify'
import type { User } from '../../src/db/schema.ts'
import { type Tap, apiKeysFor, NEW_PASSWORD, Client, buildTestApp, createUser, dialects } from '../helper.ts'

// "The portal keeps at least one enabled Administrator" holds when two Administrators act on
// each other at the same moment: the rule is checked inside the write transaction, so one of
// the two changes wins and the other is refused with the rule's message.

const LAST = 'This is the last enabled Administrator: the portal needs at least one.'
const ROUNDS = 3

async function enabledAdministrators(app: FastifyInstance): Promise<number> {
  const row = await app.db.selectFrom('users').select((eb) => eb.fn.countAll<number>().as('n')).where('role', '=', 64).where('enabled', '=', 1).executeTakeFirstOrThrow()
  return Number(row.n)
}

const keysFor = async (app: FastifyInstance, user: User): Promise<string> => (await apiKeysFor(app, user)).header

/** Two Administrators, each signed in, with the page they post from already fetched. */
async function twoAdministrators(t: Tap, dialect: 'sqlite' | 'postgres') {
  const { app } = await buildTestApp(t, dialect)
  const ada = await createUser(app, { role: 64, name: 'Ada Admin', username: 'ada@example.com' })
  const otto = await createUser(app, { role: 64, name: 'Otto Admin', username: 'otto@example.com' })
  const a = new Client(app)
  const o = new Client(app)
  await a.signIn(ada.username)
  await o.signIn(otto.username)
  return { app, ada, otto, a, o }
}

/** The two answers' statuses in order, and the refused one's text (its body or API message). */
function outcome(answers: LightMyRequestResponse[], refused: number) {
  const loser = answers.find((r) => r.statusCode === refused)
  return { statuses: answers.map((r) => r.statusCode).sort(), refusal: loser?.body ?? '' }
}

for (const dialect of dialects) {
  t.test(`${dialect}: two Administrators cannot race the portal out of Administrators`, async (t) => {
    t.test('each demotes the other through Edit User with a new password', async (t) => {
      for (let round = 0; round < ROUNDS; round++) {
        const { app, ada, otto, a, o } = await twoAdministrators(t, dialect)
        await a.get(`/users/${otto.uuid}/edit`)
        await o.get(`/users/${ada.uuid}/edit`)
        const form = (name: string) => ({ name, email: '', password: NEW_PASSWORD, confirm: NEW_PASSWORD, role: '16' })
        const answers = await Promise.all([a.post(`/users/${otto.uuid}/edit`, form('Otto Admin')), o.post(`/users/${ada.uuid}/edit`, form('Ada Admin'))])
        t.equal(await enabledAdministrators(app), 1, `round ${round}: one enabled Administrator remains`)
        const { statuses, refusal } = outcome(answers, 422)
        t.same(statuses, [303, 422], 'one change wins, the other is refused with the form re-rendered')
        t.match(refusal, LAST, `refusal matches ${LAST}`)
      }
    })

    t.test('each disables the other through the Disable User window', async (t) => {
      for (let round = 0; round < ROUNDS; round++) {
        const { app, ada, otto, a, o } = await twoAdministrators(t, dialect)
        await a.get(`/users/${otto.uuid}/disable`)
        await o.get(`/users/${ada.uuid}/disable`)
        const answers = await Promise.all([a.post(`/users/${otto.uuid}/disable`), o.post(`/users/${ada.uuid}/disable`)])
        t.equal(await enabledAdministrators(app), 1, `round ${round}: one enabled Administrator remains`)
        const { statuses, refusal } = outcome(answers, 409)
        t.same(statuses, [200, 409], 'one change wins, the other is refused')
        t.match(refusal, LAST, `refusal matches ${LAST}`)
      }
    })

    t.test('one demotes by the API while the other disables by the API', async (t) => {
      for (let round = 0; round < ROUNDS; round++) {
        const { app, ada, otto } = await twoAdministrators(t, dialect)
        const adaKeys = await keysFor(app, ada)
        const ottoKeys = await keysFor(app, otto)
        const answers = await Promise.all([
          app.inject({ method: 'PUT', url: `/api/users/${otto.id}`, headers: { 'x-apikeys': adaKeys }, payload: { permissions: 32 } }),
          app.inject({ method: 'PUT', url: `/api/users/${ada.id}/enabled`, headers: { 'x-apikeys': ottoKeys }, payload: { enabled: false } }),
        ])
        t.equal(await enabledAdministrators(app), 1, `round ${round}: one enabled Administrator remains`)
        const { statuses, refusal } = outcome(answers, 409)
        t.same(statuses, [200, 409], 'one change wins, the other is refused')
        t.match(JSON.parse(refusal || '{}').message, LAST, `JSON.parse(refusal || '{}').message matches ${LAST}`)
      }
    })
  })
}
