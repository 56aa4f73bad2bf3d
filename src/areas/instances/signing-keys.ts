import crypto from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import { type JWK, exportJWK, exportPKCS8, generateKeyPair, importPKCS8 } from 'jose'
import { decryptSecret, encryptSecret } from '../../lib/otp.ts'

// The portal's Ed25519 keys for single sign-on. The newest active key signs; a rotated key
// stays published at /.well-known/jwks.json for PUBLISHED_AFTER_RETIRE_MS, longer than any
// assertion it signed can live.
export const PUBLISHED_AFTER_RETIRE_MS = 60 * 60_000
const ALG = 'EdDSA'

export interface SigningKey {
  kid: string
  key: CryptoKey
}

async function newKeyRow(app: FastifyInstance, now: number) {
  const { privateKey, publicKey } = await generateKeyPair(ALG, { crv: 'Ed25519', extractable: true })
  const kid = crypto.randomUUID()
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: ALG, use: 'sig' }
  return { kid, private_key: encryptSecret(app.keys.secrets, await exportPKCS8(privateKey)), public_jwk: JSON.stringify(jwk), created_at: now, retired_at: null }
}

/** Adds a new signing key and retires the others (still published for a while). */
export async function rotateSigningKey(app: FastifyInstance): Promise<string> {
  const now = Date.now()
  const row = await newKeyRow(app, now)
  await app.db.transaction().execute(async (trx) => {
    await trx.updateTable('sso_signing_keys').set({ retired_at: now }).where('retired_at', 'is', null).execute()
    await trx.insertInto('sso_signing_keys').values(row).execute()
    await trx.deleteFrom('sso_signing_keys').where('retired_at', '<', now - PUBLISHED_AFTER_RETIRE_MS).execute()
  })
  return row.kid
}

/** The active key, created on first use (whichever process gets there first wins). */
export async function activeSigningKey(app: FastifyInstance): Promise<SigningKey> {
  if (app.config.ssoSigningKey) return { kid: envKid(app.config.ssoSigningKey), key: await importPKCS8(app.config.ssoSigningKey, ALG) }
  let row = await app.db.selectFrom('sso_signing_keys').selectAll().where('retired_at', 'is', null).orderBy('created_at', 'desc').orderBy('kid').executeTakeFirst()
  if (!row) {
    await app.db.insertInto('sso_signing_keys').values(await newKeyRow(app, Date.now())).execute()
    row = await app.db.selectFrom('sso_signing_keys').selectAll().where('retired_at', 'is', null).orderBy('created_at', 'desc').orderBy('kid').executeTakeFirstOrThrow()
  }
  return { kid: row.kid, key: await importPKCS8(decryptSecret(app.keys.secrets, row.private_key), ALG) }
}

function envKid(pem: string): string {
  return `env-${crypto.createHash('sha256').update(pem).digest('hex').slice(0, 16)}`
}

/** The JSON Web Key Set: the active key and recently retired ones. */
export async function publishedKeys(app: FastifyInstance): Promise<{ keys: JWK[] }> {
  if (app.config.ssoSigningKey) {
    const publicKey = crypto.createPublicKey(app.config.ssoSigningKey)
    return { keys: [{ ...(publicKey.export({ format: 'jwk' }) as JWK), kid: envKid(app.config.ssoSigningKey), alg: ALG, use: 'sig' }] }
  }
  await activeSigningKey(app)
  const rows = await app.db
    .selectFrom('sso_signing_keys')
    .select('public_jwk')
    .where((eb) => eb.or([eb('retired_at', 'is', null), eb('retired_at', '>=', Date.now() - PUBLISHED_AFTER_RETIRE_MS)]))
    .orderBy('created_at', 'desc')
    .execute()
  return { keys: rows.map((r) => JSON.parse(r.public_jwk) as JWK) }
}
