import type { Insertable, Kysely } from 'kysely'
import type { Database, OutboxMessage, OutboxTable } from '../../db/schema.ts'

type Db = Kysely<Database>

/** Replaces the text of kept messages whose secret expired by `body`; returns how many. */
export async function clearExpiredBodies(db: Db, now: number, body: string): Promise<number> {
  const res = await db
    .updateTable('outbox')
    .set({ body, expires_at: null })
    .where('expires_at', 'is not', null)
    .where('expires_at', '<=', now)
    .executeTakeFirst()
  return Number(res.numUpdatedRows)
}

export async function insertMessage(db: Db, message: Insertable<OutboxTable>): Promise<void> {
  await db.insertInto('outbox').values(message).execute()
}

/** Delivered: its content is no longer kept. */
export async function markSent(db: Db, id: string): Promise<void> {
  await db.updateTable('outbox').set({ status: 'sent', sent_at: Date.now(), body: '', expires_at: null, attempts: 1 }).where('id', '=', id).execute()
}

export async function markFailed(db: Db, id: string, error: string): Promise<void> {
  await db.updateTable('outbox').set({ status: 'failed', error, attempts: 1 }).where('id', '=', id).execute()
}

export function latestMessageRows(db: Db, limit: number): Promise<OutboxMessage[]> {
  return db.selectFrom('outbox').selectAll().orderBy('created_at', 'desc').limit(limit).execute()
}
