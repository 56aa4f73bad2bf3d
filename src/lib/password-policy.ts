import { normalisePassword } from './passwords.ts'

// One policy module. The guide names two rules: users choosing their own password need
// 12+ characters with all four classes; an Administrator setting another user's needs 8+
// with three of four. Both refuse very common passwords.

export type PasswordRule = 'self-service' | 'admin-set'

const COMMON_WORDS = [
  'password', 'passw0rd', 'p@ssword', 'p@ssw0rd', 'welcome', 'qwerty', 'qwertyuiop', 'asdfgh', 'letmein',
  'admin', 'administrator', 'iloveyou', 'monkey', 'dragon', 'football', 'baseball', 'sunshine',
  'princess', 'changeme', 'secret', 'summer', 'winter', 'spring', 'autumn', 'master', 'shadow',
  'superman', 'batman', 'trustno', 'abc', 'abcd', 'abcdef', 'login', 'default', 'guest', 'root',
  'test', 'tenable', 'mssp', 'portal', 'company', 'january', 'february', 'march', 'april',
  'august', 'september', 'october', 'november', 'december', 'hello', 'freedom', 'whatever',
  'starwars', 'pokemon', 'computer', 'internet', 'security', 'qazwsx', 'zaq', 'zxcvbn', 'zxcvbnm',
]
const COMMON_EXACT = new Set([
  '123456', '12345678', '123456789', '1234567890', '1q2w3e4r', '1q2w3e4r5t', '1qaz2wsx', 'aa123456',
  'qwe123', 'abc123', 'a1b2c3', '111111', '000000', '123123', '654321', '987654321',
])
const COMMON_BASES = new Set(COMMON_WORDS)

/** True when the password is a common word dressed up with digits, symbols and case. */
export function isCommonPassword(password: string): boolean {
  const lower = password.toLowerCase()
  if (COMMON_EXACT.has(lower)) return true
  const core = lower.replace(/^[^a-z]+|[^a-z]+$/g, '')
  if (COMMON_BASES.has(core)) return true
  const letters = lower.replace(/[^a-z]/g, '')
  if (letters.length === 0 || COMMON_BASES.has(letters)) return true
  // The same character repeated, or one short run repeated, is as good as common.
  return /^(.{1,3})\1+$/.test(lower)
}

function classes(password: string): number {
  return [/[A-Z]/, /[a-z]/, /[0-9]/, /[^A-Za-z0-9]/].filter((r) => r.test(password)).length
}

/** Returns an error message for the user, or null when the password is acceptable. */
export function checkPassword(typed: string, rule: PasswordRule): string | null {
  // The rules judge the password that is stored: its normalised form.
  const password = normalisePassword(typed)
  if (password.length > 256) return 'Passwords can be at most 256 characters long.'
  if (rule === 'self-service') {
    if (password.length < 12 || classes(password) < 4) {
      return 'Passwords must be at least 12 characters long and contain an uppercase letter, a lowercase letter, a number and a special character.'
    }
  } else if (password.length < 8 || classes(password) < 3) {
    return 'Passwords must be at least 8 characters long and contain at least three of the following: an uppercase letter, a lowercase letter, a number, a special character.'
  }
  if (isCommonPassword(password)) return 'This password is too common. Choose one that is harder to guess.'
  return null
}
