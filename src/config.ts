import path from 'node:path'
import { z } from 'zod'

const booleanish = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes')

const hexKey = z.string().regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hexadecimal characters (32 bytes)')

/** The environment the portal reads, parsed once at start-up (see .env.example). */
export const configSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('production'),
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  HOST: z.string().min(1).default('127.0.0.1'),
  BASE_URL: z.url({ protocol: /^https?$/ }).optional(),
  DATA_DIR: z.string().min(1).default('./data'),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL')
    .optional(),
  TRUST_PROXY: z
    .string()
    .optional()
    .transform((v, ctx) => {
      if (v === undefined || v === '' || v === 'false' || v === '0') return false
      if (v === 'true') return true
      if (/^\d+$/.test(v)) return Number(v)
      if (/^[0-9a-fA-F.:/,\s]+$/.test(v)) return v
      ctx.addIssue({ code: 'custom', message: 'must be true, false, a hop count or a list of addresses' })
      return z.NEVER
    }),
  SESSION_KEY: hexKey.optional(),
  SECRETS_KEY: hexKey.optional(),
  SSO_SIGNING_KEY: z.string().regex(/-----BEGIN PRIVATE KEY-----/, 'must be an Ed25519 private key in PKCS#8 PEM form').optional(),
  DEMO_INSTANCE: booleanish.default(false),
  SESSION_IDLE_MINUTES: z.coerce.number().int().min(1).max(24 * 60).default(30),
  SESSION_MAX_HOURS: z.coerce.number().int().min(1).max(24 * 30).default(12),
  ASSIST_MAX_MINUTES: z.coerce.number().int().min(1).max(24 * 60).default(60),
  SMTP_URL: z.string().regex(/^smtps?:\/\//, 'must be an smtp:// or smtps:// URL').optional(),
  MAIL_FROM: z.string().min(3).default('MSSP Portal <no-reply@localhost>'),
  SMS_WEBHOOK_URL: z.url({ protocol: /^https?$/ }).optional(),
  SMS_VIA_OUTBOX: booleanish.default(false),
  MSSP_ADMIN_USERNAME: z.string().optional(),
  MSSP_ADMIN_PASSWORD: z.string().optional(),
  SIGNIN_RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(1).max(100_000).default(30),
  API_RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(1).max(1_000_000).default(600),
  ARGON2_CONCURRENCY: z.coerce.number().int().min(1).max(64).optional(),
  METRICS_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  SHUTDOWN_DRAIN_SECONDS: z.coerce.number().min(0).max(300).default(5),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
})

export type Config = Readonly<{
  env: 'development' | 'production' | 'test'
  port: number
  host: string
  baseUrl: string
  dataDir: string
  databaseUrl: string | undefined
  trustProxy: boolean | number | string
  sessionKey: string | undefined
  secretsKey: string | undefined
  ssoSigningKey: string | undefined
  demoInstance: boolean
  sessionIdleMinutes: number
  sessionMaxHours: number
  assistMaxMinutes: number
  smtpUrl: string | undefined
  mailFrom: string
  smsWebhookUrl: string | undefined
  smsViaOutbox: boolean
  adminUsername: string | undefined
  adminPassword: string | undefined
  argon2Concurrency: number | undefined
  apiRateLimitPerMinute: number
  signInRateLimitPerMinute: number
  logLevel: string
  shutdownDrainSeconds: number
  metricsToken: string | undefined
}>

export class ConfigError extends Error {}

/** Parses the environment; a bad value throws a ConfigError naming the variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const cleaned = Object.fromEntries(
    Object.keys(configSchema.shape).map((k) => [k, env[k] === '' ? undefined : env[k]]),
  )
  const parsed = configSchema.safeParse(cleaned)
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`)
    throw new ConfigError(`Invalid configuration:\n${lines.join('\n')}`)
  }
  const e = parsed.data
  const missingKeys = e.DATABASE_URL ? (['SESSION_KEY', 'SECRETS_KEY'] as const).filter((k) => !e[k]) : []
  if (missingKeys.length) {
    throw new ConfigError(
      `Invalid configuration:\n${missingKeys.map((k) => `  ${k}: required with DATABASE_URL (every portal process must share the same key)`).join('\n')}`,
    )
  }
  if (Boolean(e.MSSP_ADMIN_USERNAME) !== Boolean(e.MSSP_ADMIN_PASSWORD)) {
    throw new ConfigError(
      'Invalid configuration:\n  MSSP_ADMIN_USERNAME and MSSP_ADMIN_PASSWORD: set both or neither',
    )
  }
  const baseUrl = (e.BASE_URL ?? `http://localhost:${e.PORT}`).replace(/\/+$/, '')
  return Object.freeze({
    env: e.NODE_ENV,
    port: e.PORT,
    host: e.HOST,
    baseUrl,
    dataDir: path.resolve(e.DATA_DIR),
    databaseUrl: e.DATABASE_URL,
    trustProxy: e.TRUST_PROXY,
    sessionKey: e.SESSION_KEY,
    secretsKey: e.SECRETS_KEY,
    ssoSigningKey: e.SSO_SIGNING_KEY?.replace(/\\n/g, '\n'),
    demoInstance: e.DEMO_INSTANCE,
    sessionIdleMinutes: e.SESSION_IDLE_MINUTES,
    sessionMaxHours: e.SESSION_MAX_HOURS,
    assistMaxMinutes: e.ASSIST_MAX_MINUTES,
    smtpUrl: e.SMTP_URL,
    mailFrom: e.MAIL_FROM,
    smsWebhookUrl: e.SMS_WEBHOOK_URL,
    smsViaOutbox: e.SMS_VIA_OUTBOX,
    adminUsername: e.MSSP_ADMIN_USERNAME,
    adminPassword: e.MSSP_ADMIN_PASSWORD,
    argon2Concurrency: e.ARGON2_CONCURRENCY,
    apiRateLimitPerMinute: e.API_RATE_LIMIT_PER_MINUTE,
    signInRateLimitPerMinute: e.SIGNIN_RATE_LIMIT_PER_MINUTE,
    logLevel: e.LOG_LEVEL,
    shutdownDrainSeconds: e.SHUTDOWN_DRAIN_SECONDS,
    metricsToken: e.METRICS_TOKEN,
  })
}
