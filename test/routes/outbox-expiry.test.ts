// Issue 15, item 11 (the outbox): without SMTP or an SMS gateway the outbox is the delivery,
// and a message's reset link or code is cleared from it once that secret expires.
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { advanceClock, Client, PASSWORD, buildTestApp, createUser, dialects } from '../helper.ts'
import { buildApp } from '../../src/app.ts'
import { afterListen } from '../../src/server.ts'
import { EXPIRED_BODY, latestMessages } from '../../src/areas/outbox/service.ts'

const HOUR = 3_600_000

async function requestReset(app: FastifyInstance, username: string) {
  const client = new Client(app)
  await client.get('/forgot-password')
  const res = await client.post('/forgot-password', { username })
  if (res.statusCode !== 200) throw new Error(`forgot-password answered ${res.statusCode}`)
}

const outboxRows = (app: FastifyInstance) => app.db.selectFrom('outbox').selectAll().orderBy('created_at').execute()

for (const dialect of dialects) {
  t.test(`${dialect}: an expired reset link's outbox row no longer holds the link`, async (t) => {
    const { app } = await buildTestApp(t, dialect)
    const user = await createUser(app, { role: 16 })
    await requestReset(app, user.username)
    const [mail] = await outboxRows(app)
    t.match(mail!.body, /\/reset-password\?token=[A-Za-z0-9_-]{40,}/, 'the mail holds the link while it works')
    const code = await app.db.selectFrom('one_time_codes').selectAll().where('purpose', '=', 'password_reset').executeTakeFirstOrThrow()
    t.equal(Number(mail!.expires_at), Number(code.expires_at), "the outbox row expires with the link's own expiry")
    t.ok(Number(code.expires_at) - Number(mail!.created_at) >= HOUR - 1000, 'an hour from the request')

    // The next message written an hour later clears the expired one.
    advanceClock(t, HOUR + 1000)
    const other = await createUser(app, { role: 16 })
    await requestReset(app, other.username)
    const [first, second] = await outboxRows(app)
    t.equal(first!.recipient, user.username, 'the first message is the first user\'s')
    t.equal(first!.body, EXPIRED_BODY, 'the expired link is gone from the outbox')
    t.notMatch(first!.body, 'reset-password', 'no reset link left in it')
    t.equal(first!.expires_at, null, 'and no expiry left to clear')
    t.equal(first!.subject, 'Reset your MSSP Portal password', 'the subject stays: it holds no secret')
    t.match(second!.body, /\/reset-password\?token=/, 'the fresh link is kept until it expires')
  })

  t.test(`${dialect}: an SMS code is cleared once it expires; the outbox command reads no expired code`, async (t) => {
    const { app } = await buildTestApp(t, dialect, { SMS_VIA_OUTBOX: 'true' })
    const user = await createUser(app, { role: 16 })
    const client = new Client(app)
    await client.signIn(user.username)
    await client.get('/my-account')
    const res = await client.post('/my-account/two-factor/phone', { phone: '+1 (555) 123-4567', current_password: PASSWORD })
    t.equal(res.statusCode, 200, 'the phone is set (a code is sent)')
    const sms = await app.db.selectFrom('outbox').selectAll().where('kind', '=', 'sms').executeTakeFirstOrThrow()
    t.match(sms.body, /code is \d{6}/, 'the text holds the code while it works')
    const code = await app.db.selectFrom('one_time_codes').selectAll().where('user_id', '=', user.id).executeTakeFirstOrThrow()
    t.equal(Number(sms.expires_at), Number(code.expires_at), "the text expires with the code's own expiry")
    t.match((await latestMessages(app.db)).find((m) => m.kind === 'sms')!.body, /code is \d{6}/, 'shown while it works')

    advanceClock(t, 10 * 60_000 + 1000)
    const shown = await latestMessages(app.db)
    t.equal(shown.find((m) => m.kind === 'sms')!.body, EXPIRED_BODY, 'the outbox command never prints an expired code')
    t.notMatch(JSON.stringify(await outboxRows(app)), /code is \d{6}/, 'nor does the table hold it')
  })
}

t.test('sqlite: a portal starting up clears, once it listens, what expired while it was stopped', async (t) => {
  const { app } = await buildTestApp(t, 'sqlite')
  const user = await createUser(app, { role: 16 })
  await requestReset(app, user.username)
  await app.close()
  advanceClock(t, HOUR + 1000)
  const again = await buildApp(app.config)
  t.teardown(() => again.close())
  await afterListen(again)
  const [mail] = await outboxRows(again)
  t.equal(mail!.body, EXPIRED_BODY, 'the expired link is cleared at start-up')
})
