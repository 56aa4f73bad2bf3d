// The two API routes that take a list of account uuids accept up to 50,000 of them: about
// 2 MB of JSON, over the default 1 MiB body limit. Such a body is read and answered (here
// 404: the uuids name no account), never refused as too large, never a 5xx.
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { apiKeysFor, buildTestApp, createUser, dialects } from '../helper.ts'
import type { User } from '../../src/db/schema.ts'
import { ADMINISTRATOR, roleLevel } from '../../src/lib/roles.ts'
import { uuid } from '../../src/lib/tokens.ts'

const keysFor = async (app: FastifyInstance, user: User): Promise<Record<string, string>> => (await apiKeysFor(app, user)).headers

for (const dialect of dialects) {
  t.test(`${dialect}: 50,000 account uuids are not refused as too large`, async (t) => {
    const { app } = await buildTestApp(t, dialect)
    const admin = await createUser(app, { role: ADMINISTRATOR })
    const basic = await createUser(app, { role: roleLevel('basic') })
    const headers = { ...(await keysFor(app, admin)), 'content-type': 'application/json' }
    const account_uuids = Array.from({ length: 50_000 }, () => uuid())

    const logos = JSON.stringify({ logo_uuid: null, account_uuids })
    t.ok(logos.length > 1_048_576, `the body is over 1 MiB (${logos.length} bytes)`)
    const logo = await app.inject({ method: 'PUT', url: '/api/mssp/accounts/logos', headers, payload: logos })
    t.equal(logo.statusCode, 404, `PUT /api/mssp/accounts/logos reads the list and names no account (${logo.body.slice(0, 200)})`)

    const assign = await app.inject({ method: 'PUT', url: `/api/mssp/accounts/childContainers/${basic.uuid}`, headers, payload: JSON.stringify({ account_uuids }) })
    t.equal(assign.statusCode, 404, `PUT …/childContainers/:user_uuid reads the list and names no account (${assign.body.slice(0, 200)})`)

    const tooMany = JSON.stringify({ account_uuids: [...account_uuids, uuid()] })
    const over = await app.inject({ method: 'PUT', url: `/api/mssp/accounts/childContainers/${basic.uuid}`, headers, payload: tooMany })
    t.equal(over.statusCode, 400, 'one more than 50,000 is a validation error')
  })
}
