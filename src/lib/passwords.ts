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

export function hashPassword(password: string): Promise<string> {
  return gate.run(() => hash(password, ARGON2_OPTIONS))
}

export function verifyPassword(passwordHash: string, password: string): Promise<boolean> {
  return gate.run(() => verify(passwordHash, password).catch(() => false))
}

// Verified against when the username is unknown, so that the answer takes as long.
let dummyHash: Promise<string> | undefined
export function verifyAgainstDummy(password: string): Promise<boolean> {
  dummyHash ??= hash('dummy password for timing', ARGON2_OPTIONS)
  return dummyHash.then((h) => verifyPassword(h, password)).then(() => false)
}
