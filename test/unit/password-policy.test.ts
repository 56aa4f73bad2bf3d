import t from 'tap'
import { checkPassword, isCommonPassword } from '../../src/lib/password-policy.ts'
import { ARGON2_OPTIONS, hashPassword, verifyPassword } from '../../src/lib/passwords.ts'

const SELF_SERVICE_MESSAGE = /at least 12 characters long and contain an uppercase letter, a lowercase letter, a number and a special character/
const ADMIN_SET_MESSAGE = /at least 8 characters long and contain at least three of the following/
const COMMON_MESSAGE = /too common/
const TOO_LONG_MESSAGE = /at most 256 characters/

// A long password without a common word or a short repeated run.
const long = (n: number) => ('Kx7!' + 'qwzmvhrtplbnsdjgfcyu'.repeat(20)).slice(0, n)

t.test('self-service rule: 12+ characters with all four classes, not common', async (t) => {
  const cases: Array<[string, RegExp | null, string]> = [
    ['Gl4cier-Tundra', null, 'four classes, 14 characters'],
    ['Kx7!mvhrtplb', null, 'exactly 12 characters'],
    ['Kx7!mvhrtpl', SELF_SERVICE_MESSAGE, '11 characters'],
    ['gl4cier-tundra', SELF_SERVICE_MESSAGE, 'no uppercase letter'],
    ['GL4CIER-TUNDRA', SELF_SERVICE_MESSAGE, 'no lowercase letter'],
    ['Glacier-Tundra', SELF_SERVICE_MESSAGE, 'no number'],
    ['Gl4cierTundra9', SELF_SERVICE_MESSAGE, 'no special character'],
    ['', SELF_SERVICE_MESSAGE, 'empty'],
    ['Password123!', COMMON_MESSAGE, 'Password123!'],
    ['Welcome2024!!', COMMON_MESSAGE, 'Welcome2024!!'],
    ['Qwerty123456!', COMMON_MESSAGE, 'Qwerty123456!'],
    ['P@ssw0rd2024!', COMMON_MESSAGE, 'leet-speak password'],
    ['!!Administrator1', COMMON_MESSAGE, 'a common word wrapped in digits and symbols'],
    ['Summer-2025-!', COMMON_MESSAGE, 'a season and a year'],
    [long(256), null, '256 characters'],
    [long(257), TOO_LONG_MESSAGE, '257 characters'],
  ]
  for (const [password, expected, name] of cases) {
    const result = checkPassword(password, 'self-service')
    if (expected === null) t.equal(result, null, `${name}: accepted`)
    else t.match(result ?? '', expected, `${name}: refused with the right message`)
  }
})

t.test('admin-set rule: 8+ characters with three of four classes, not common', async (t) => {
  const cases: Array<[string, RegExp | null, string]> = [
    ['Zebra7lamp', null, 'upper, lower, digit'],
    ['zebra7lamp!', null, 'lower, digit, special'],
    ['ZEBRA-LAMP7', null, 'upper, digit, special'],
    ['Zebra-lamp', null, 'upper, lower, special'],
    ['Zeb7amp', ADMIN_SET_MESSAGE, '7 characters'],
    ['Zx9!kq2m', null, 'exactly 8 characters'],
    ['zebra7lamp', ADMIN_SET_MESSAGE, 'only two classes'],
    ['zebralampriver', ADMIN_SET_MESSAGE, 'only one class'],
    ['Password1', COMMON_MESSAGE, 'Password1'],
    ['Welcome2024!!', COMMON_MESSAGE, 'Welcome2024!!'],
    ['Qwerty123456!', COMMON_MESSAGE, 'Qwerty123456!'],
    ['Changeme1', COMMON_MESSAGE, 'Changeme1'],
    [long(257), TOO_LONG_MESSAGE, '257 characters'],
  ]
  for (const [password, expected, name] of cases) {
    const result = checkPassword(password, 'admin-set')
    if (expected === null) t.equal(result, null, `${name}: accepted`)
    else t.match(result ?? '', expected, `${name}: refused with the right message`)
  }
  t.match(checkPassword('Zebra7lamp', 'self-service') ?? '', SELF_SERVICE_MESSAGE, 'the admin-set minimum is not enough for self-service')
})

t.test('isCommonPassword', async (t) => {
  for (const p of ['Password123!', 'Welcome2024!!', 'Qwerty123456!', '123456789', '1q2w3e4r', 'aaaaaaaaaaaa', 'abcabcabcabc', '!!!!2024!!!!', 'LetMeIn!2024', 'iloveyou']) {
    t.ok(isCommonPassword(p), `${p} is common`)
  }
  for (const p of ['Gl4cier-Tundra', 'Correct-Horse-42-Battery', 'Zebra7lamp', 'Kx7!mvhrtplb']) {
    t.notOk(isCommonPassword(p), `${p} is not common`)
  }
})

t.test('argon2id with m=19456, t=2, p=1', async (t) => {
  t.same({ ...ARGON2_OPTIONS }, { memoryCost: 19456, timeCost: 2, parallelism: 1 }, 'the argon2id parameters are m=19456 KiB, t=2, p=1')
  const hash = await hashPassword('Gl4cier-Tundra')
  t.ok(hash.startsWith('$argon2id$v=19$m=19456,t=2,p=1$'), `the stored hash says so: ${hash.slice(0, 32)}`)
  t.notMatch(hash, 'Gl4cier-Tundra', 'the hash does not contain the password')
  t.equal(await verifyPassword(hash, 'Gl4cier-Tundra'), true, 'the right password verifies')
  t.equal(await verifyPassword(hash, 'gl4cier-tundra'), false, 'the password in another case does not verify')
  t.equal(await verifyPassword('not a hash', 'Gl4cier-Tundra'), false, 'a damaged hash refuses, it does not throw')
  t.not(await hashPassword('Gl4cier-Tundra'), hash, 'salted: the same password hashes differently')
})
