import type { Kysely } from 'kysely'
import type { Database, TwoFactor } from '../../db/schema.ts'

type Db = Kysely<Database>

export function findTwoFactor(db: Db, userId: number): Promise<TwoFactor | undefined> {
  return db.selectFrom('two_factor').selectAll().where('user_id', '=', userId).executeTakeFirst()
}

export async function upsertTwoFactor(db: Db, userId: number, values: Partial<Omit<TwoFactor, 'user_id' | 'updated_at'>>): Promise<void> {
  const now = Date.now()
  await db
    .insertInto('two_factor')
    .values({ user_id: userId, email_enabled: 0, sms_phone: null, pending_phone: null, totp_secret: null, pending_totp_secret: null, pending_totp_created_at: null, totp_last_step: null, ...values, updated_at: now })
    .onConflict((oc) => oc.column('user_id').doUpdateSet({ ...values, updated_at: now }))
    .execute()
}

/** Without an e-mail address there is no backup e-mail for codes. */
export async function turnOffBackupEmail(db: Db, userId: number): Promise<void> {
  await db.updateTable('two_factor').set({ email_enabled: 0 }).where('user_id', '=', userId).execute()
}

export async function deleteTwoFactor(db: Db, userId: number): Promise<void> {
  await db.deleteFrom('two_factor').where('user_id', '=', userId).execute()
  await db.deleteFrom('recovery_codes').where('user_id', '=', userId).execute()
}

/** Accepts a TOTP step only if it is newer than the last one (atomic: one process wins). */
export async function acceptTotpStep(db: Db, userId: number, step: number): Promise<boolean> {
  const res = await db
    .updateTable('two_factor')
    .set({ totp_last_step: step })
    .where('user_id', '=', userId)
    .where((eb) => eb.or([eb('totp_last_step', 'is', null), eb('totp_last_step', '<', step)]))
    .executeTakeFirst()
  return Number(res.numUpdatedRows) === 1
}

export async function replaceRecoveryCodes(db: Db, userId: number, rows: Array<{ id: string; code_hash: string }>, now: number): Promise<void> {
  await db.deleteFrom('recovery_codes').where('user_id', '=', userId).execute()
  if (rows.length) await db.insertInto('recovery_codes').values(rows.map((r) => ({ ...r, user_id: userId, used_at: null, created_at: now }))).execute()
}

export async function countUnusedRecoveryCodes(db: Db, userId: number): Promise<number> {
  const row = await db.selectFrom('recovery_codes').select((eb) => eb.fn.countAll<number>().as('n')).where('user_id', '=', userId).where('used_at', 'is', null).executeTakeFirstOrThrow()
  return Number(row.n)
}

/** Uses a recovery code once; false if it is unknown or used (atomic). */
export async function useRecoveryCode(db: Db, userId: number, codeHash: string, now: number): Promise<boolean> {
  const res = await db
    .updateTable('recovery_codes')
    .set({ used_at: now })
    .where('user_id', '=', userId)
    .where('code_hash', '=', codeHash)
    .where('used_at', 'is', null)
    .executeTakeFirst()
  return Number(res.numUpdatedRows) === 1
}

/** Live codes bound to one sign-in attempt or setup (for resend limits). */
export function codesBoundTo(db: Db, boundTo: string) {
  return db.selectFrom('one_time_codes').select(['id', 'purpose', 'created_at', 'used_at', 'expires_at']).where('bound_to', '=', boundTo).orderBy('created_at', 'desc').execute()
}

export async function voidCodesBoundTo(db: Db, boundTo: string, now: number): Promise<void> {
  await db.updateTable('one_time_codes').set({ used_at: now }).where('bound_to', '=', boundTo).where('used_at', 'is', null).execute()
}

export function findLiveBoundCode(db: Db, boundTo: string, codeHash: string, now: number) {
  return db
    .selectFrom('one_time_codes')
    .selectAll()
    .where('bound_to', '=', boundTo)
    .where('code_hash', '=', codeHash)
    .where('used_at', 'is', null)
    .where('expires_at', '>', now)
    .executeTakeFirst()
}
