import type { Kysely } from 'kysely'
import type { Database, LogosTable } from '../../db/schema.ts'
import type { Insertable } from 'kysely'
import { ADMINISTRATOR } from '../../lib/roles.ts'

type Db = Kysely<Database>

/** Who is asking for a logo's image. */
export interface Viewer {
  id: number
  role: number
}

/** Logos for the Logo drop-down: names only, never the image bytes. */
export function listLogoChoices(db: Db) {
  return db.selectFrom('logos').select(['id', 'uuid', 'name']).orderBy('name').orderBy('id').execute()
}

export function findLogoByUuid(db: Db, uuid: string) {
  return db.selectFrom('logos').select(['id', 'uuid', 'name', 'filename', 'width', 'height', 'created_at', 'updated_at']).where('uuid', '=', uuid).executeTakeFirst()
}
export type LogoRow = NonNullable<Awaited<ReturnType<typeof findLogoByUuid>>>

/** Every logo with how many accounts use it (for the Logos page); never the image bytes. */
export async function listLogos(db: Db) {
  const rows = await db
    .selectFrom('logos')
    .leftJoin('accounts', 'accounts.logo_id', 'logos.id')
    .select(['logos.id', 'logos.uuid', 'logos.name', 'logos.filename', 'logos.width', 'logos.height', 'logos.created_at', 'logos.updated_at'])
    .select((eb) => eb.fn.count<number>('accounts.id').as('account_count'))
    .groupBy(['logos.id', 'logos.uuid', 'logos.name', 'logos.filename', 'logos.width', 'logos.height', 'logos.created_at', 'logos.updated_at'])
    .orderBy('logos.name')
    .orderBy('logos.id')
    .execute()
  // PostgreSQL returns count() as a string.
  return rows.map((r) => ({ ...r, account_count: Number(r.account_count) }))
}
export type LogoListRow = Awaited<ReturnType<typeof listLogos>>[number]

export async function countAccountsUsingLogo(db: Db, logoId: number): Promise<number> {
  const row = await db.selectFrom('accounts').select((eb) => eb.fn.countAll<number>().as('n')).where('logo_id', '=', logoId).executeTakeFirstOrThrow()
  return Number(row.n)
}

/**
 * A logo's image for a viewer: Administrators may fetch any logo, everyone else only one
 * assigned to at least one account assigned to them (undefined otherwise, as if missing).
 */
export function findLogoImage(db: Db, viewer: Viewer, uuid: string) {
  let query = db.selectFrom('logos').select(['logos.id', 'logos.uuid', 'logos.png', 'logos.updated_at']).where('logos.uuid', '=', uuid)
  if (viewer.role !== ADMINISTRATOR) {
    query = query.where((eb) =>
      eb.exists(
        eb
          .selectFrom('accounts')
          .innerJoin('user_accounts', 'user_accounts.account_id', 'accounts.id')
          .select('accounts.id')
          .whereRef('accounts.logo_id', '=', 'logos.id')
          .where('user_accounts.user_id', '=', viewer.id),
      ),
    )
  }
  return query.executeTakeFirst()
}

export async function insertLogo(db: Db, logo: Insertable<LogosTable>): Promise<LogoRow> {
  return db
    .insertInto('logos')
    .values(logo)
    .returning(['id', 'uuid', 'name', 'filename', 'width', 'height', 'created_at', 'updated_at'])
    .executeTakeFirstOrThrow()
}

export async function updateLogo(db: Db, id: number, changes: Partial<Pick<LogosTable, 'name' | 'filename' | 'png' | 'width' | 'height' | 'updated_at'>>): Promise<LogoRow> {
  return db
    .updateTable('logos')
    .set(changes)
    .where('id', '=', id)
    .returning(['id', 'uuid', 'name', 'filename', 'width', 'height', 'created_at', 'updated_at'])
    .executeTakeFirstOrThrow()
}

/** Takes the logo off every account that shows it; returns how many accounts changed. */
export async function clearLogoFromAccounts(db: Db, logoId: number, now: number): Promise<number> {
  const res = await db.updateTable('accounts').set({ logo_id: null, modified_at: now }).where('logo_id', '=', logoId).executeTakeFirst()
  return Number(res.numUpdatedRows)
}

export async function deleteLogo(db: Db, id: number): Promise<void> {
  await db.deleteFrom('logos').where('id', '=', id).execute()
}

/** A logo's image by its id (for the single sign-on assertion of an account showing it). */
export async function findLogoPng(db: Db, id: number): Promise<Buffer | null> {
  const row = await db.selectFrom('logos').select('png').where('id', '=', id).executeTakeFirst()
  return row?.png ?? null
}
