import os from 'node:os'
import { hash, verify } from '@node-rs/argon2'

// OWASP's minimum for argon2id (the library's default algorithm): m=19456 KiB, t=2, p=1.
export const ARGON2_OPTIONS = { memoryCost: 19456, timeCost: 2, parallelism: 1 } as const

/**
 * Bounds how many hashes run at once, so that a burst of sign-ins queues here instead
 * of taking every core away from page requests.
 */
class Semaphore {
  private active = 0
  private readonly waiting: Array<() => void> = []
  constructor(private readonly limit: number) {}
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve))
    this.active++
    try {
      return await fn()
    } finally {
      this.active--
      this.waiting.shift()?.()
    }
  }
}

let gate = new Semaphore(Math.max(1, Math.floor(os.availableParallelism() / 2)))

export function setHashConcurrency(limit: number): void {
  gate = new Semaphore(limit)
}

/**
 * The form of a password that is hashed and checked: Unicode NFKC, as NIST SP 800-63B
 * asks, so that the same password typed on another keyboard or system (é as one code point
 * or as e and a combining accent, a full-width digit) is the same password. ASCII is
 * unchanged by it, so every hash made before stays valid.
 */
export function normalisePassword(password: string): string {
  return password.normalize('NFKC')
}

export function hashPassword(password: string): Promise<string> {
  return gate.run(() => hash(normalisePassword(password), ARGON2_OPTIONS))
}

/**
 * Checks a password against its hash. Hashes made before passwords were normalised hold
 * the password as it was typed: when the normalised form does not match and the typed one
 * differs from it, the typed one is tried too, so that nobody is locked out.
 */
export async function verifyPassword(passwordHash: string, password: string): Promise<boolean> {
  const normalised = normalisePassword(password)
  const check = (candidate: string) => gate.run(() => verify(passwordHash, candidate).catch(() => false))
  if (await check(normalised)) return true
  return normalised !== password && check(password)
}

// Verified against when the username is unknown, so that the answer takes as long.
let dummyHash: Promise<string> | undefined
export function verifyAgainstDummy(password: string): Promise<boolean> {
  dummyHash ??= hash('dummy password for timing', ARGON2_OPTIONS)
  return dummyHash.then((h) => verifyPassword(h, password)).then(() => false)
}
