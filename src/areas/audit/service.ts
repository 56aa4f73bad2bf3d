import type { FastifyRequest } from 'fastify'
import type { Kysely } from 'kysely'
import type { Database, User } from '../../db/schema.ts'
import { uuid } from '../../lib/tokens.ts'
import { insertAuditEvent } from './repository.ts'
import { signInCounter } from '../../ops/metrics.ts'

export interface AuditInput {
  action: string
  outcome?: 'success' | 'failure'
  /** Who acted; defaults to the signed-in user of the request. */
  actor?: Pick<User, 'id' | 'username'> | null
  target?: { type: string; id: string | number; name?: string | null }
  fields?: Record<string, string | number | boolean | null>
}

/** Records one audit event: UTC time, actor, the assisting Administrator, action, target, outcome. */
export async function audit(db: Kysely<Database>, request: FastifyRequest | null, input: AuditInput): Promise<void> {
  const actor = input.actor !== undefined ? input.actor : (request?.auth?.user ?? null)
  // While assisting, every event names the Administrator behind the user.
  const assisting = request?.auth?.assistedBy ?? null
  await insertAuditEvent(db, {
    id: uuid(),
    created_at: Date.now(),
    actor_user_id: actor?.id ?? null,
    actor_name: actor?.username ?? null,
    assisting_user_id: assisting?.id ?? null,
    assisting_name: assisting?.username ?? null,
    action: input.action,
    outcome: input.outcome ?? 'success',
    target_type: input.target?.type ?? null,
    target_id: input.target ? String(input.target.id) : null,
    target_name: input.target?.name ?? null,
    ip: request?.ip ?? null,
    fields: JSON.stringify(input.fields ?? {}),
  })
  if (input.action === 'auth.sign_in') signInCounter.inc({ outcome: input.outcome ?? 'success' })
}
