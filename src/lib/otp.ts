import crypto from 'node:crypto'
import * as OTPAuth from 'otpauth'

// One-time codes for sign-in and setup, authenticator-app (TOTP) codes, recovery codes,
// and the encryption of TOTP secrets at rest.

export const CODE_DIGITS = 6
export const CODE_TTL_MS = 10 * 60_000
export const TOTP_PERIOD_S = 30

/** A random numeric code (uniform; never from Math.random). */
export function numericCode(digits = CODE_DIGITS): string {
  return String(crypto.randomInt(0, 10 ** digits)).padStart(digits, '0')
}

/** Recovery codes look like `k7p2-9xqm-4tfz`: 60 bits each, easy to read aloud. */
export function recoveryCode(): string {
  const alphabet = 'abcdefghjkmnpqrstuvwxyz23456789'
  const chars = Array.from({ length: 12 }, () => alphabet[crypto.randomInt(0, alphabet.length)])
  return `${chars.slice(0, 4).join('')}-${chars.slice(4, 8).join('')}-${chars.slice(8).join('')}`
}

export function normaliseRecoveryCode(input: string): string {
  return input.trim().toLowerCase().replace(/[^a-z0-9]/g, '')
}

export function newTotpSecret(): string {
  return new OTPAuth.Secret({ size: 20 }).base32
}

function totp(secretBase32: string, label = ''): OTPAuth.TOTP {
  return new OTPAuth.TOTP({ issuer: 'MSSP Portal', label, algorithm: 'SHA1', digits: CODE_DIGITS, period: TOTP_PERIOD_S, secret: OTPAuth.Secret.fromBase32(secretBase32) })
}

export function totpUri(secretBase32: string, username: string): string {
  return totp(secretBase32, username).toString()
}

/**
 * The 30-second step a TOTP code belongs to (the current one, or one either side for clock
 * drift), or null. Callers refuse a step at or before the last one accepted: no replays.
 */
export function totpStep(secretBase32: string, token: string, now = Date.now()): number | null {
  if (!/^\d{6}$/.test(token)) return null
  const delta = totp(secretBase32).validate({ token, timestamp: now, window: 1 })
  return delta === null ? null : Math.floor(now / 1000 / TOTP_PERIOD_S) + delta
}

/** The code an authenticator app shows at `now` (tests and the demo use it). */
export function totpCodeAt(secretBase32: string, now = Date.now()): string {
  return totp(secretBase32).generate({ timestamp: now })
}

// AES-256-GCM with a subkey of the portal's secrets key: `v1.<iv>.<tag>.<ciphertext>`.
function subkey(secretsKey: Buffer): Buffer {
  return crypto.createHmac('sha256', secretsKey).update('mssp-portal totp secrets').digest()
}

export function encryptSecret(secretsKey: Buffer, plaintext: string): string {
  const iv = crypto.randomBytes(12)
  const cipher = crypto.createCipheriv('aes-256-gcm', subkey(secretsKey), iv)
  const data = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()])
  return ['v1', iv.toString('base64url'), cipher.getAuthTag().toString('base64url'), data.toString('base64url')].join('.')
}

export function decryptSecret(secretsKey: Buffer, stored: string): string {
  const [version, iv, tag, data] = stored.split('.')
  if (version !== 'v1' || !iv || !tag || !data) throw new Error('unknown secret format')
  const decipher = crypto.createDecipheriv('aes-256-gcm', subkey(secretsKey), Buffer.from(iv, 'base64url'))
  decipher.setAuthTag(Buffer.from(tag, 'base64url'))
  return Buffer.concat([decipher.update(Buffer.from(data, 'base64url')), decipher.final()]).toString('utf8')
}
