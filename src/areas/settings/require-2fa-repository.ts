import type { Kysely } from 'kysely'
import type { Database } from '../../db/schema.ts'

type Db = Kysely<Database>

// The require-2FA switch: one row of the settings table ('true' or 'false'; none is off).

export const KEY_REQUIRE_2FA = 'require_2fa'

export async function readRequire2fa(db: Db): Promise<boolean> {
  const row = await db.selectFrom('settings').select('value').where('key', '=', KEY_REQUIRE_2FA).executeTakeFirst()
  return row?.value === 'true'
}

export async function writeRequire2fa(db: Db, value: boolean): Promise<void> {
  const now = Date.now()
  await db
    .insertInto('settings')
    .values({ key: KEY_REQUIRE_2FA, value: String(value), updated_at: now })
    .onConflict((oc) => oc.column('key').doUpdateSet({ value: String(value), updated_at: now }))
    .execute()
}

/** Enabled users without a second factor (whom the switch would send to setup). */
export async function countUsersWithout2fa(db: Db): Promise<{ without: number; enabled: number }> {
  const row = await db
    .selectFrom('users')
    .leftJoin('two_factor', 'two_factor.user_id', 'users.id')
    .select((eb) => [
      eb.fn.countAll<number>().as('enabled'),
      eb.fn.sum<number>(eb.case().when(eb.and([eb('two_factor.sms_phone', 'is', null), eb('two_factor.totp_secret', 'is', null)])).then(1).else(0).end()).as('without'),
    ])
    .where('users.enabled', '=', 1)
    .executeTakeFirstOrThrow()
  return { without: Number(row.without ?? 0), enabled: Number(row.enabled) }
}
