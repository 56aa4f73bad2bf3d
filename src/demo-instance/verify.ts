// Verifies what the portal sends (docs/sso.md): the sign-in assertion and the
// user-transfer message. Both are compact JWS (JWT) signed by the portal with Ed25519.
// Every way one can be wrong becomes a Refusal with a code, an HTTP status and a reason
// in words, which the routes show as a page (sign-in) or JSON (user transfer).
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  decodeProtectedHeader,
  errors,
  jwtVerify,
  type JSONWebKeySet,
  type JWTPayload,
  type JWTVerifyGetKey,
} from 'jose'
import { z } from 'zod'
import type { JtiStore } from './jti-store.ts'
import { ROLE_RULES, isRoleLevel, type RoleLevel } from './roles.ts'

export const ALGORITHM = 'EdDSA'
export const CLOCK_TOLERANCE_SEC = 5
export const SIGN_IN_MAX_LIFETIME_SEC = 60
export const TRANSFER_MAX_LIFETIME_SEC = 300
/** The largest logo accepted in the `logo` claim, decoded (the portal's own limit is 256 KB). */
export const LOGO_MAX_BYTES = 384 * 1024

export type RefusalCode =
  | 'missing_assertion'
  | 'malformed'
  | 'unsigned'
  | 'algorithm_not_allowed'
  | 'missing_kid'
  | 'unknown_key'
  | 'bad_signature'
  | 'keys_unavailable'
  | 'expired'
  | 'issued_in_future'
  | 'lifetime_too_long'
  | 'wrong_issuer'
  | 'wrong_audience'
  | 'wrong_type'
  | 'missing_claim'
  | 'invalid_claim'
  | 'replayed'

const AGAIN = {
  signIn: ' Go back to the MSSP Portal and open the instance again.',
  transfer: ' Sign a new message (with a new jti) to try again.',
} as const

export class Refusal extends Error {
  constructor(
    readonly code: RefusalCode,
    readonly statusCode: 400 | 401 | 503,
    message: string,
  ) {
    super(message)
    this.name = 'Refusal'
  }
}

const uuid = z.uuid()
const name = z.string().trim().min(1).max(200)
const username = z.string().trim().min(1).max(254)
const person = z.object({ sub: uuid, name, preferred_username: username })

const role = z
  .object({ level: z.number(), label: z.string() })
  .refine((r) => isRoleLevel(r.level), { message: 'level must be 16, 24, 32, 40 or 64' })
  .refine((r) => !isRoleLevel(r.level) || ROLE_RULES[r.level].label === r.label, { message: 'label does not match the level' })

const INTERFACES = ['vm', 'was', 'cs'] as const
export type InterfaceCode = (typeof INTERFACES)[number]

const PNG_DATA_URL = 'data:image/png;base64,'
const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])

/** Claims of the sign-in assertion that the instance reads (besides iss, aud, iat, exp). */
const signInSchema = z.object({
  sub: uuid,
  name,
  preferred_username: username,
  role,
  account: z.object({ uuid, name }),
  interface: z.enum(INTERFACES),
  logo: z.string().max(Math.ceil((LOGO_MAX_BYTES * 4) / 3) + PNG_DATA_URL.length + 4).nullable(),
  return_url: z.string().max(2048),
  jti: uuid,
  act: person.nullish(),
})

const transferSchema = z.object({
  typ: z.literal('user-transfer'),
  sub: uuid,
  successor: person,
  jti: uuid,
})

const SIGN_IN_CLAIMS = ['iss', 'aud', 'sub', 'name', 'preferred_username', 'role', 'account', 'interface', 'logo', 'return_url', 'iat', 'exp', 'jti'] as const
const TRANSFER_CLAIMS = ['iss', 'aud', 'typ', 'sub', 'successor', 'iat', 'exp', 'jti'] as const

export interface Person {
  sub: string
  name: string
  preferred_username: string
}

export interface SignIn {
  sub: string
  name: string
  username: string
  role: { level: RoleLevel; label: string }
  account: { uuid: string; name: string }
  interface: InterfaceCode
  /** The account's logo as PNG bytes, or null for the neutral default. */
  logo: Buffer | null
  returnUrl: string
  /** The Administrator assisting the user, when there is one. */
  actor: Person | null
  jti: string
  exp: number
}

export interface Transfer {
  sub: string
  successor: Person
  jti: string
}

export interface VerifierOptions {
  /** The trusted portal's URL, exactly as it puts it in `iss` (no trailing slash). */
  portalUrl: string
  /** This instance's origin (scheme://host:port), the only `aud` it accepts. */
  origin: string
  /** The portal's public keys: a JWKS, or the URL to fetch it from (the default: `${portalUrl}/.well-known/jwks.json`). */
  jwks?: JSONWebKeySet | URL
  jtiStore: JtiStore
  /** For tests: the current time. */
  now?: () => number
}

/** Resolves the key by `kid` from the portal's JWKS, accepting Ed25519 public keys only. */
function keyResolver(portalUrl: string, jwks: JSONWebKeySet | URL | undefined): JWTVerifyGetKey {
  const source = jwks ?? new URL(`${portalUrl}/.well-known/jwks.json`)
  const inner =
    source instanceof URL
      ? createRemoteJWKSet(source, { timeoutDuration: 5_000, cooldownDuration: 30_000, cacheMaxAge: 600_000 })
      : createLocalJWKSet({ keys: source.keys.filter((k) => k.kty === 'OKP' && k.crv === 'Ed25519') })
  return async (header, token) => {
    const key = await inner(header, token)
    if (!(key instanceof CryptoKey) || key.algorithm.name !== 'Ed25519' || key.type !== 'public') {
      throw new Refusal('unknown_key', 401, 'The portal’s key for this assertion is not an Ed25519 public key.')
    }
    return key
  }
}

function describe(value: unknown): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value)
  return text === undefined ? 'nothing' : text.length > 120 ? `${text.slice(0, 117)}...` : text
}

export function createVerifier(opts: VerifierOptions) {
  const getKey = keyResolver(opts.portalUrl, opts.jwks)
  const portalOrigin = new URL(opts.portalUrl).origin
  const now = opts.now ?? Date.now
  const what = { signIn: 'assertion', transfer: 'message' } as const

  /** Signature, algorithm, key, issuer, audience and times; returns the claims. */
  async function verifyToken(token: unknown, kind: 'signIn' | 'transfer'): Promise<JWTPayload> {
    const noun = what[kind]
    if (typeof token !== 'string' || token.trim() === '') {
      throw new Refusal('missing_assertion', 400, kind === 'signIn'
        ? 'The request carried no sign-in assertion. Open the instance from the MSSP Portal’s Accounts page.'
        : 'The request carried no message.')
    }
    if (token.split('.').length !== 3) {
      throw new Refusal('malformed', 400, `The ${noun} is not a signed token (a compact JWS has three parts separated by dots).`)
    }
    let header: ReturnType<typeof decodeProtectedHeader>
    try {
      header = decodeProtectedHeader(token)
    } catch {
      throw new Refusal('malformed', 400, `The ${noun}’s header cannot be read: it is not a well-formed signed token.`)
    }
    if (header.alg === undefined || String(header.alg).toLowerCase() === 'none' || token.endsWith('.')) {
      throw new Refusal('unsigned', 401, `The ${noun} is not signed. The instance accepts only ${noun}s signed by the portal with EdDSA (Ed25519).`)
    }
    if (header.alg !== ALGORITHM) {
      throw new Refusal('algorithm_not_allowed', 401, `The ${noun} is signed with ${describe(header.alg)}; the instance accepts only EdDSA (Ed25519) signatures from the portal’s published keys.`)
    }
    if (typeof header.kid !== 'string' || header.kid === '') {
      throw new Refusal('missing_kid', 401, `The ${noun}’s header names no key (kid), so the instance cannot tell which of the portal’s keys signed it.`)
    }
    const maxLifetime = kind === 'signIn' ? SIGN_IN_MAX_LIFETIME_SEC : TRANSFER_MAX_LIFETIME_SEC
    const required = kind === 'signIn' ? SIGN_IN_CLAIMS : TRANSFER_CLAIMS
    try {
      const { payload } = await jwtVerify(token, getKey, {
        algorithms: [ALGORITHM],
        issuer: opts.portalUrl,
        audience: opts.origin,
        clockTolerance: CLOCK_TOLERANCE_SEC,
        maxTokenAge: maxLifetime,
        requiredClaims: ['exp', 'iat', 'jti', 'sub'],
        currentDate: new Date(now()),
      })
      for (const claim of required) {
        if (!Object.hasOwn(payload, claim)) throw new Refusal('missing_claim', 400, `The ${noun} is missing the “${claim}” claim.`)
      }
      const iat = payload.iat!
      const exp = payload.exp!
      if (exp <= iat) throw new Refusal('invalid_claim', 400, `The ${noun}’s “exp” is not after its “iat”.`)
      if (exp - iat > maxLifetime) {
        throw new Refusal('lifetime_too_long', 401, `The ${noun} is valid for ${exp - iat} seconds; the instance accepts at most ${maxLifetime} seconds between “iat” and “exp”.`)
      }
      return payload
    } catch (err) {
      throw toRefusal(err, kind, header.kid)
    }
  }

  function toRefusal(err: unknown, kind: 'signIn' | 'transfer', kid: string): Refusal {
    if (err instanceof Refusal) return err
    const noun = what[kind]
    if (err instanceof errors.JWTExpired) {
      return err.claim === 'iat'
        ? new Refusal('expired', 401, `The ${noun} was issued too long ago.${AGAIN[kind]}`)
        : new Refusal('expired', 401, `The ${noun} has expired (it is valid for seconds only).${AGAIN[kind]}`)
    }
    if (err instanceof errors.JWTClaimValidationFailed) {
      const claims = err.payload as Record<string, unknown>
      if (err.reason === 'missing') return new Refusal('missing_claim', 400, `The ${noun} is missing the “${err.claim}” claim.`)
      if (err.reason === 'invalid') return new Refusal('invalid_claim', 400, `The ${noun}’s “${err.claim}” claim is not valid (${err.message}).`)
      switch (err.claim) {
        case 'iss':
          return new Refusal('wrong_issuer', 401, `The ${noun} was issued by ${describe(claims.iss)}, not by the portal this instance trusts (${opts.portalUrl}).`)
        case 'aud':
          return new Refusal('wrong_audience', 401, `The ${noun} is meant for ${describe(claims.aud)}, not for this instance (${opts.origin}).`)
        case 'iat':
          return new Refusal('issued_in_future', 401, `The ${noun} claims to be issued in the future. Check the clocks of the portal and the instance.`)
        case 'nbf':
          return new Refusal('issued_in_future', 401, `The ${noun} is not valid yet (“nbf” is in the future).`)
        default:
          return new Refusal('invalid_claim', 400, `The ${noun}’s “${err.claim}” claim is not valid.`)
      }
    }
    if (err instanceof errors.JWSSignatureVerificationFailed) {
      return new Refusal('bad_signature', 401, `The ${noun}’s signature does not verify: it was altered after signing, or not signed by the portal.`)
    }
    if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys) {
      return new Refusal('unknown_key', 401, `The ${noun} is signed with a key the portal does not publish (kid ${describe(kid)}).`)
    }
    if (err instanceof errors.JOSEAlgNotAllowed || err instanceof errors.JOSENotSupported) {
      return new Refusal('algorithm_not_allowed', 401, `The ${noun} is signed with an algorithm the instance does not accept; only EdDSA (Ed25519).`)
    }
    // Fetching the key set failed: a timeout, a network error, a non-200 answer, bad JSON.
    if (err instanceof errors.JWKSTimeout || err instanceof errors.JWKSInvalid || !(err instanceof errors.JOSEError) || err.code === 'ERR_JOSE_GENERIC') {
      return new Refusal('keys_unavailable', 503, 'The instance could not get the portal’s public keys to check the signature. Try again in a moment.')
    }
    if (err instanceof errors.JWTInvalid || err instanceof errors.JWSInvalid) {
      return new Refusal('malformed', 400, `The ${noun} is not a well-formed signed token (${err.message}).`)
    }
    return new Refusal('bad_signature', 401, `The ${noun} could not be verified.`)
  }

  async function consumeOnce(jti: string, exp: number, kind: 'signIn' | 'transfer') {
    const forgetAfter = (exp + CLOCK_TOLERANCE_SEC) * 1000 + 1000
    if (!(await opts.jtiStore.consume(jti, forgetAfter))) {
      throw new Refusal('replayed', 401, `This ${what[kind]} has already been used; each one works once.${AGAIN[kind]}`)
    }
  }

  function invalid(noun: string, issues: z.core.$ZodIssue[]): Refusal {
    const issue = issues[0]
    const claim = issue.path.length ? issue.path.map(String).join('.') : 'claims'
    return new Refusal('invalid_claim', 400, `The ${noun}’s “${claim}” claim is not valid: ${issue.message}.`)
  }

  return {
    /** Verifies a sign-in assertion and uses up its jti. */
    async signIn(token: unknown): Promise<SignIn> {
      const payload = await verifyToken(token, 'signIn')
      if (payload.typ !== undefined) {
        throw new Refusal('wrong_type', 400, `This is not a sign-in assertion (its “typ” is ${describe(payload.typ)}).`)
      }
      const parsed = signInSchema.safeParse(payload)
      if (!parsed.success) throw invalid('assertion', parsed.error.issues)
      const claims = parsed.data
      const returnUrl = parseReturnUrl(claims.return_url, portalOrigin)
      const logo = claims.logo === null ? null : parseLogo(claims.logo)
      await consumeOnce(claims.jti, payload.exp!, 'signIn')
      return {
        sub: claims.sub,
        name: claims.name,
        username: claims.preferred_username,
        role: { level: claims.role.level as RoleLevel, label: claims.role.label },
        account: claims.account,
        interface: claims.interface,
        logo,
        returnUrl,
        actor: claims.act ?? null,
        jti: claims.jti,
        exp: payload.exp!,
      }
    },

    /** Verifies a user-transfer message and uses up its jti. */
    async transfer(token: unknown): Promise<Transfer> {
      const payload = await verifyToken(token, 'transfer')
      if (payload.typ !== 'user-transfer') {
        throw new Refusal('wrong_type', 400, `This is not a user-transfer message (its “typ” is ${describe(payload.typ)}, not “user-transfer”).`)
      }
      const parsed = transferSchema.safeParse(payload)
      if (!parsed.success) throw invalid('message', parsed.error.issues)
      if (parsed.data.successor.sub === parsed.data.sub) {
        throw new Refusal('invalid_claim', 400, 'The message’s “successor” is the deleted user.')
      }
      await consumeOnce(parsed.data.jti, payload.exp!, 'transfer')
      return parsed.data
    },
  }
}

export type Verifier = ReturnType<typeof createVerifier>

function parseReturnUrl(value: string, portalOrigin: string): string {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw new Refusal('invalid_claim', 400, 'The assertion’s “return_url” claim is not a URL.')
  }
  if (url.origin !== portalOrigin) {
    throw new Refusal('invalid_claim', 400, `The assertion’s “return_url” claim points outside the portal (${portalOrigin}).`)
  }
  return url.href
}

function parseLogo(value: string): Buffer {
  const bad = (why: string) => new Refusal('invalid_claim', 400, `The assertion’s “logo” claim is not valid: ${why}.`)
  if (!value.startsWith(PNG_DATA_URL)) throw bad('it must be a data:image/png;base64 URL or null')
  const base64 = value.slice(PNG_DATA_URL.length)
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(base64) || base64.length % 4 !== 0) throw bad('the base64 text is malformed')
  const bytes = Buffer.from(base64, 'base64')
  if (bytes.length > LOGO_MAX_BYTES) throw bad(`it is larger than ${LOGO_MAX_BYTES / 1024} KB`)
  if (bytes.length < 8 || !bytes.subarray(0, 8).equals(PNG_SIGNATURE)) throw bad('it is not a PNG image')
  return bytes
}
