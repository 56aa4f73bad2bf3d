import crypto from 'node:crypto'
import { type JWK, exportJWK, exportPKCS8, generateKeyPair, importPKCS8 } from 'jose'
import { decryptSecret, encryptSecret } from '../../lib/otp.ts'
import type { Portal } from '../../types.ts'
import * as repo from './repository.ts'

type KeyHolder = Pick<Portal, 'config' | 'db' | 'keys'>

// The portal's Ed25519 keys for single sign-on. The newest active key signs; a rotated key
// stays published at /.well-known/jwks.json for PUBLISHED_AFTER_RETIRE_MS, longer than any
// assertion it signed can live.
export const PUBLISHED_AFTER_RETIRE_MS = 60 * 60_000
const ALG = 'EdDSA'

export interface SigningKey {
  kid: string
  key: CryptoKey
}

async function newKeyRow(portal: Pick<Portal, 'keys'>, now: number) {
  const { privateKey, publicKey } = await generateKeyPair(ALG, { crv: 'Ed25519', extractable: true })
  const kid = crypto.randomUUID()
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: ALG, use: 'sig' }
  return { kid, private_key: encryptSecret(portal.keys.secrets, await exportPKCS8(privateKey)), public_jwk: JSON.stringify(jwk), created_at: now, retired_at: null }
}

/** Adds a new signing key and retires the others (still published for a while). */
export async function rotateSigningKey(portal: KeyHolder): Promise<string> {
  const now = Date.now()
  const row = await newKeyRow(portal, now)
  await portal.db.transaction().execute(async (trx) => {
    await repo.retireActiveKeys(trx, now)
    await repo.insertKey(trx, row)
    await repo.deleteKeysRetiredBefore(trx, now - PUBLISHED_AFTER_RETIRE_MS)
  })
  return row.kid
}

/** The active key, created on first use (whichever process gets there first wins). */
export async function activeSigningKey(portal: KeyHolder): Promise<SigningKey> {
  if (portal.config.ssoSigningKey) return { kid: envKid(portal.config.ssoSigningKey), key: await importPKCS8(portal.config.ssoSigningKey, ALG) }
  let row = await repo.findActiveKey(portal.db)
  if (!row) {
    await repo.insertKey(portal.db, await newKeyRow(portal, Date.now()))
    row = await repo.findActiveKey(portal.db)
    if (!row) throw new Error('No active single sign-on key, just after creating one.')
  }
  return { kid: row.kid, key: await importPKCS8(decryptSecret(portal.keys.secrets, row.private_key), ALG) }
}

function envKid(pem: string): string {
  return `env-${crypto.createHash('sha256').update(pem).digest('hex').slice(0, 16)}`
}

/** The JSON Web Key Set: the active key and recently retired ones. */
export async function publishedKeys(portal: KeyHolder): Promise<{ keys: JWK[] }> {
  if (portal.config.ssoSigningKey) {
    const publicKey = crypto.createPublicKey(portal.config.ssoSigningKey)
    return { keys: [{ ...(publicKey.export({ format: 'jwk' }) as JWK), kid: envKid(portal.config.ssoSigningKey), alg: ALG, use: 'sig' }] }
  }
  await activeSigningKey(portal)
  const rows = await repo.keysPublishedSince(portal.db, Date.now() - PUBLISHED_AFTER_RETIRE_MS)
  return { keys: rows.map((r) => JSON.parse(r.public_jwk) as JWK) }
}
