// "Configure Two-Factor Authentication" in a real browser, by the guide's labels, with and
// without JavaScript: SMS setup (texts go to the outbox table), the backup e-mail setting,
// a full sign-in with a texted code and Resend Code, Edit, Disable; and the authenticator
// app (beyond the guide) with a full sign-in by a TOTP code.
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'
import type { Page } from 'playwright-core'
import { totpCodeAt } from '../../src/lib/otp.ts'
import { BASIC, PASSWORD } from '../support/fixtures.ts'
import { startPortal, type PortalProcess as Portal } from '../support/portal-process.ts'
import { MODES, appears, browserAvailable, launchBrowser, newSession, signIn } from './chromium.ts'

t.setTimeout(240_000)

// htmx logs the swaps of its deliberate 4xx answers (a wrong code, too soon a resend) as errors.
const HTMX_4XX = /htmx:responseError|Response Status Error Code 4\d\d/

/** A Basic user (the least role the guide names) with an e-mail address, made by the CLI. */
async function createBasicUser(portal: Portal, username: string, name: string, email: string) {
  const res = await portal.cli(['create-admin', '--username', username, '--name', name, '--email', email], `${PASSWORD}\n`)
  if (res.code !== 0) throw new Error(`create-admin ${username} failed:\n${res.stdout}${res.stderr}`)
  portal.withDb((db) => db.prepare('update users set role = ? where username = ?').run(BASIC, username))
}

/** The latest text message's code (SMS_VIA_OUTBOX puts texts in the outbox, kind='sms'). */
function lastSmsCode(portal: Portal): { to: string; code: string } {
  const row = portal.withDb((db) => db.prepare("select recipient, body from outbox where kind = 'sms' order by created_at desc limit 1").get()) as { recipient: string; body: string } | undefined
  const code = /\b(\d{6})\b/.exec(row?.body ?? '')?.[1]
  if (!row || !code) throw new Error('no text message with a code in the outbox')
  return { to: row.recipient, code }
}

function smsCount(portal: Portal): number {
  return (portal.withDb((db) => db.prepare("select count(*) as n from outbox where kind = 'sms'").get()) as { n: number }).n
}

/** Lets Resend Code through its 30-second spacing without waiting for it. */
function ageCodes(portal: Portal) {
  portal.withDb((db) => db.prepare('update one_time_codes set created_at = created_at - 60000').run())
}

/** My Account from the user account menu, as the guide's steps 1-2 say. */
async function openMyAccount(page: Page) {
  await page.goto('/accounts')
  const menu = page.locator('details.user-menu')
  await menu.locator('summary').click()
  await menu.getByRole('link', { name: 'My Account' }).click()
  await page.waitForURL('**/my-account')
  await page.getByRole('heading', { name: 'My Account', level: 1 }).waitFor()
}

async function signOut(page: Page) {
  const menu = page.locator('details.user-menu')
  await menu.locator('summary').click()
  await menu.getByRole('button', { name: 'Sign Out' }).click()
  await page.waitForURL('**/login?m=signed-out')
}

/** What covers the middle of an element, or null when the element itself gets the click. */
async function coveredBy(locator: ReturnType<Page['locator']>): Promise<string | null> {
  return locator.evaluate((el) => {
    const r = el.getBoundingClientRect()
    const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2)
    if (!hit || el === hit || el.contains(hit)) return null
    return `${hit.tagName.toLowerCase()}${hit.id ? '#' + hit.id : ''}.${[...hit.classList].join('.')}`
  })
}

const tfaCard = (page: Page) => page.getByRole('region', { name: 'Enable Two Factor Authentication' })

if (browserAvailable(t)) {
  const portal = await startPortal(t, { env: { SMS_VIA_OUTBOX: 'true' } })
  const browser = await launchBrowser(t)
  const users = MODES.flatMap((m) => {
    const tag = m.javaScriptEnabled ? 'js' : 'nojs'
    return [
      { username: `sms-${tag}@example.com`, name: `Sam Sms ${tag}`, email: `sam-${tag}@mail.example.com` },
      { username: `totp-${tag}@example.com`, name: `Tia Totp ${tag}`, email: `tia-${tag}@mail.example.com` },
    ]
  })
  // One at a time: two CLI processes migrating the same SQLite file at once meet a lock.
  for (const u of users) await createBasicUser(portal, u.username, u.name, u.email)

  for (const mode of MODES) {
    const js = mode.javaScriptEnabled
    const tag = js ? 'js' : 'nojs'

    t.test(`${mode.name}: Configure Two-Factor Authentication by text message, sign in with it, Disable`, async (t) => {
      const username = `sms-${tag}@example.com`
      const { page, problems } = await newSession(t, browser, portal, mode)
      await signIn(page, username)
      await openMyAccount(page)

      // 3. Under Enable Two Factor Authentication, click Enable: the Two-Factor Setup plane.
      const card = tfaCard(page)
      t.ok(await card.isVisible(), 'the Enable Two Factor Authentication section')
      await card.getByRole('link', { name: 'Enable', exact: true }).click()
      const plane = page.getByRole('dialog', { name: 'Two-Factor Setup' })
      await plane.waitFor()
      t.equal(new URL(page.url()).pathname, js ? '/my-account' : '/my-account/two-factor/setup', js ? 'a plane over the page' : 'a page of its own')

      // A number without its country code is refused with the reason.
      await plane.getByLabel('Mobile Phone Number', { exact: true }).fill('555 123')
      await plane.getByRole('button', { name: 'Next' }).click()
      t.ok(await appears(page.getByText('Enter the mobile phone number with its country code')), 'a number without a country code is refused')

      // 4-5. Type the mobile phone number, Next: the Verification Code screen, and a text.
      const sentBefore = smsCount(portal)
      await page.getByRole('dialog', { name: 'Two-Factor Setup' }).getByLabel('Mobile Phone Number', { exact: true }).fill('+1 (555) 010-4477')
      // Every change of a second factor asks for the current password (issue 15): a wrong one first.
      await page.getByRole('dialog', { name: 'Two-Factor Setup' }).getByLabel('Current Password', { exact: true }).fill('Wrong-Password-1!')
      await page.getByRole('dialog', { name: 'Two-Factor Setup' }).getByRole('button', { name: 'Next' }).click()
      await page.getByText('The current password is not correct.').waitFor()
      t.equal(smsCount(portal), sentBefore, 'no text without the right password')
      await page.getByRole('dialog', { name: 'Two-Factor Setup' }).getByLabel('Current Password', { exact: true }).fill(PASSWORD)
      await page.getByRole('dialog', { name: 'Two-Factor Setup' }).getByRole('button', { name: 'Next' }).click()
      const codeScreen = page.getByRole('dialog', { name: 'Two-Factor Setup' })
      await codeScreen.getByRole('heading', { name: 'Verification Code' }).waitFor()
      t.match(await codeScreen.textContent(), /\+1 •••• ••77/, 'names the (masked) phone number')
      t.equal(smsCount(portal), sentBefore + 1, 'a text message was sent')
      const first = lastSmsCode(portal)
      t.equal(first.to, '+15550104477', 'to the number typed, normalised')

      // 6. Resend Code: a new text, and the first code is void.
      ageCodes(portal)
      await codeScreen.getByRole('button', { name: 'Resend Code' }).click()
      await page.getByText('A new code is on its way.').waitFor()
      t.equal(smsCount(portal), sentBefore + 2, 'Resend Code sends another text')
      const second = lastSmsCode(portal)

      // 7-8. A wrong code first, then the code from the text; Next: the success message.
      const screen = () => page.getByRole('dialog', { name: 'Two-Factor Setup' })
      if (first.code !== second.code) {
        await screen().getByLabel('Verification Code', { exact: true }).fill(first.code)
        await screen().getByRole('button', { name: 'Next' }).click()
        t.ok(await appears(page.getByText('That code is not valid or has expired.')), 'the code voided by Resend Code is refused')
      }
      await screen().getByLabel('Verification Code', { exact: true }).fill(second.code)
      await screen().getByRole('button', { name: 'Next' }).click()
      t.ok(await appears(page.getByText('Two-factor authentication is configured for your account.')), 'the plane says two-factor authentication is configured')
      const codes = (await screen().getByLabel('Recovery codes').inputValue()).split('\n')
      t.equal(codes.length, 10, 'ten recovery codes shown once')
      t.ok(await screen().getByLabel('Recovery codes').evaluate((el) => el.scrollHeight <= el.clientHeight), 'all ten codes are in view without scrolling the box')
      const copyCodes = screen().getByRole('button', { name: 'Copy recovery codes' })
      if (js) await copyCodes.waitFor({ state: 'visible', timeout: 3_000 }).catch(() => {})
      t.equal(await copyCodes.isVisible(), js, js ? 'with a copy button' : 'no copy button without JavaScript')

      // 9. Send backup email: select it, Save.
      const backup = screen().getByLabel('Send backup email', { exact: true })
      t.notOk(await backup.isChecked(), 'the backup e-mail starts off')
      await backup.check()
      await screen().getByLabel('Current Password', { exact: true }).fill(PASSWORD)
      await screen().getByRole('button', { name: 'Save' }).click()
      await page.locator('#flash-region').getByText('Your backup e-mail setting was saved.').waitFor()
      t.equal(new URL(page.url()).pathname, '/my-account', 'back on My Account')
      t.ok(await tfaCard(page).getByLabel('Send backup email', { exact: true }).isChecked(), 'the setting is kept')
      t.match(await tfaCard(page).textContent(), /On\s+Codes come by text message to \+1 •••• ••77\./, 'the section says it is on, by text')
      t.ok(await tfaCard(page).getByRole('link', { name: 'Edit', exact: true }).isVisible(), 'Edit is offered now')
      t.ok(await tfaCard(page).getByRole('link', { name: 'Disable', exact: true }).isVisible(), 'and Disable')

      if (js) {
        // A plane opened while the success message is still up, then the user account menu.
        await tfaCard(page).getByRole('link', { name: 'Edit', exact: true }).click()
        const open = page.getByRole('dialog', { name: 'Two-Factor Setup' })
        await open.waitFor()
        t.equal(await coveredBy(open.getByRole('link', { name: 'Close' })), null, 'a success message still up leaves the plane\'s ✕ reachable')
        const menu = page.locator('details.user-menu')
        await menu.locator('summary').click()
        t.equal(await coveredBy(menu.getByRole('button', { name: 'Sign Out' })), null, 'the user account menu opens above the plane')
        await page.keyboard.press('Escape')
        await page.keyboard.press('Escape')
        t.equal(await page.getByRole('dialog').count(), 0, 'Escape closes the plane')
      }

      // A full sign-in: the password, then the code texted to the phone.
      await signOut(page)
      const beforeSignIn = smsCount(portal)
      await signIn(page, username)
      t.equal(new URL(page.url()).pathname, '/login/verify', 'the password leads to the code step')
      t.equal(await page.locator('h1').textContent(), 'Verification Code', 'the Verification Code step')
      t.equal(await page.locator('details.nav-menu, details.user-menu').count(), 0, 'a half-signed-in page shows no navigation or user account menu (they all lead back here)')
      t.equal(smsCount(portal), beforeSignIn + 1, 'a code was texted')
      t.match(await page.locator('main').textContent(), /\+1 •••• ••77/, 'the step names the masked phone number')
      t.ok(await page.getByRole('button', { name: 'Send a code to my backup e-mail' }).isVisible(), 'the backup e-mail is offered')
      const signInCode = lastSmsCode(portal).code
      ageCodes(portal)
      await page.getByRole('button', { name: 'Resend Code' }).click()
      await page.getByText('A new code is on its way by text message.').waitFor()
      t.equal(smsCount(portal), beforeSignIn + 2, 'Resend Code on the sign-in step texts again')
      const resent = lastSmsCode(portal).code
      if (resent !== signInCode) {
        await page.getByRole('textbox', { name: 'Verification Code', exact: true }).fill(signInCode)
        await page.getByRole('button', { name: 'Next' }).click()
        t.ok(await appears(page.getByText('That code is not valid or has expired.')), 'the resent code voids the first one')
      }
      await page.getByRole('textbox', { name: 'Verification Code', exact: true }).fill(resent)
      await page.getByRole('button', { name: 'Next' }).click()
      await page.waitForURL('**/accounts')
      t.equal(new URL(page.url()).pathname, '/accounts', 'signed in with the texted code')

      // Edit: a new number through the same plane; no new recovery codes.
      await openMyAccount(page)
      await tfaCard(page).getByRole('link', { name: 'Edit', exact: true }).click()
      await page.getByRole('dialog', { name: 'Two-Factor Setup' }).getByLabel('Mobile Phone Number', { exact: true }).fill('+44 20 7946 0958')
      await page.getByRole('dialog', { name: 'Two-Factor Setup' }).getByLabel('Current Password', { exact: true }).fill(PASSWORD)
      await page.getByRole('dialog', { name: 'Two-Factor Setup' }).getByRole('button', { name: 'Next' }).click()
      await page.getByRole('dialog', { name: 'Two-Factor Setup' }).getByRole('heading', { name: 'Verification Code' }).waitFor()
      await screen().getByLabel('Verification Code', { exact: true }).fill(lastSmsCode(portal).code)
      await screen().getByRole('button', { name: 'Next' }).click()
      await page.getByText('Two-factor authentication is configured for your account.').waitFor()
      t.equal(await screen().getByLabel('Recovery codes').count(), 0, 'editing keeps the recovery codes')
      await screen().getByRole('link', { name: 'Done' }).click()
      await page.waitForURL('**/my-account')
      t.match(await tfaCard(page).textContent(), /••58/, 'the new number is in use')

      // Disable: the Disable Two-Factor window and its warning, Current Password, Continue.
      await tfaCard(page).getByRole('link', { name: 'Disable', exact: true }).click()
      const disable = page.getByRole('alertdialog', { name: 'Disable Two-Factor' })
      await disable.waitFor()
      t.match(await disable.textContent(), /deletes your mobile phone number and the other settings/, 'the warning')
      await disable.getByLabel('Current Password', { exact: true }).fill('Wrong-Password-1!')
      await disable.getByRole('button', { name: 'Continue' }).click()
      t.ok(await appears(page.getByText('The current password is not correct.')), 'a wrong password is refused')
      await page.getByRole('alertdialog', { name: 'Disable Two-Factor' }).getByLabel('Current Password', { exact: true }).fill(PASSWORD)
      await page.getByRole('alertdialog', { name: 'Disable Two-Factor' }).getByRole('button', { name: 'Continue' }).click()
      await tfaCard(page).getByRole('link', { name: 'Enable', exact: true }).waitFor()
      t.equal(new URL(page.url()).pathname, '/my-account', 'back on My Account, two-factor off')
      t.equal(await page.getByRole('alertdialog').count(), 0, 'the window is closed')
      const message = await page.locator('#flash-region').textContent()
      t.match(message, 'Two-factor authentication is disabled for your account.', 'a message confirms it')
      t.equal(portal.withDb((db) => db.prepare('select count(*) as n from two_factor t join users u on u.id = t.user_id where u.username = ?').get(username) as { n: number }).n, 0, 'the phone number and settings are deleted')

      await signOut(page)
      await signIn(page, username)
      t.equal(new URL(page.url()).pathname, '/accounts', 'signing in needs no code any more')
      t.same(problems.filter((p) => !HTMX_4XX.test(p)), [], 'no page errors, console errors (CSP included) or server errors')
    })

    t.test(`${mode.name}: the authenticator app, and a sign-in with its code`, async (t) => {
      const username = `totp-${tag}@example.com`
      const { page, problems } = await newSession(t, browser, portal, mode)
      await signIn(page, username)
      await openMyAccount(page)
      await tfaCard(page).getByRole('link', { name: 'Enable', exact: true }).click()
      await page.getByRole('dialog', { name: 'Two-Factor Setup' }).getByRole('link', { name: 'use an authenticator app' }).click()
      const plane = page.getByRole('dialog', { name: 'Authenticator App' })
      await plane.waitFor()
      t.equal(new URL(page.url()).pathname, js ? '/my-account' : '/my-account/two-factor/authenticator', 'the plane opens in place with JavaScript, as a page without')
      // The current password first: only then is a secret made (opening the plane changes nothing).
      t.equal(await plane.locator('#totp-secret').count(), 0, 'no key before the current password')
      await plane.getByLabel('Current Password', { exact: true }).fill(PASSWORD)
      await plane.getByRole('button', { name: 'Next' }).click()
      await plane.getByRole('img', { name: 'QR code for your authenticator app' }).waitFor()
      t.equal(new URL(page.url()).pathname, js ? '/my-account' : '/my-account/two-factor/authenticator/start', 'the QR code step, in place with JavaScript')
      t.ok(await plane.getByRole('img', { name: 'QR code for your authenticator app' }).isVisible(), 'a QR code')
      const secret = (await plane.locator('#totp-secret').textContent())!.replace(/\s/g, '')
      t.match(secret, /^[A-Z2-7]{32}$/, 'and the key as text')

      await plane.getByLabel('Verification Code', { exact: true }).fill('000000')
      await plane.getByRole('button', { name: 'Next' }).click()
      await page.getByText('That code is not valid.').waitFor()
      t.equal(await page.getByRole('dialog', { name: 'Authenticator App' }).locator('#totp-secret').count(), 0, 'a wrong code is not answered with the key again')
      t.ok(await page.getByRole('dialog', { name: 'Authenticator App' }).getByRole('link', { name: 'Start again' }).isVisible(), 'the way to a new QR code is offered')
      await page.getByRole('dialog', { name: 'Authenticator App' }).getByLabel('Verification Code', { exact: true }).fill(totpCodeAt(secret))
      await page.getByRole('dialog', { name: 'Authenticator App' }).getByRole('button', { name: 'Next' }).click()
      await page.getByText('Two-factor authentication is configured for your account.').waitFor()
      t.equal((await page.getByLabel('Recovery codes').inputValue()).split('\n').length, 10, 'ten recovery codes')
      await page.getByRole('link', { name: 'Done' }).click()
      await page.waitForURL('**/my-account')
      t.match(await tfaCard(page).textContent(), /from your authenticator app/, 'the section names the app')

      await signOut(page)
      const texts = smsCount(portal)
      await signIn(page, username)
      t.equal(new URL(page.url()).pathname, '/login/verify', 'the sign-in asks for the code')
      t.match(await page.locator('main').textContent(), /authenticator app/, 'asks for the app code')
      t.equal(smsCount(portal), texts, 'no text for an app-only user')
      t.equal(await page.getByRole('button', { name: 'Resend Code' }).count(), 0, 'and no Resend Code')
      // The setup used this 30-second step: the next step's code is inside the ±1 window.
      await page.getByRole('textbox', { name: 'Verification Code', exact: true }).fill(totpCodeAt(secret, Date.now() + 30_000))
      await page.getByRole('button', { name: 'Next' }).click()
      await page.waitForURL('**/accounts')
      t.equal(new URL(page.url()).pathname, '/accounts', 'signed in with the authenticator code')
      t.same(problems.filter((p) => !HTMX_4XX.test(p)), [], 'no page errors, console errors (CSP included) or server errors')
    })
  }

  // Screenshots for a person to look at (TWO_FACTOR_SCREENSHOT_DIR=...): the Two-Factor
  // Setup plane, the authenticator plane and the code step of signing in.
  const shots = process.env.TWO_FACTOR_SCREENSHOT_DIR
  if (shots) {
    t.test('screenshots', async (t) => {
      fs.mkdirSync(shots, { recursive: true })
      await createBasicUser(portal, 'shots-2fa@example.com', 'Shona Shots', 'shona@mail.example.com')
      const { page } = await newSession(t, browser, portal, MODES[0])
      await page.setViewportSize({ width: 1280, height: 800 })
      await signIn(page, 'shots-2fa@example.com')
      await openMyAccount(page)
      await tfaCard(page).getByRole('link', { name: 'Enable', exact: true }).click()
      await page.getByRole('dialog', { name: 'Two-Factor Setup' }).waitFor()
      await page.screenshot({ path: path.join(shots, 'two-factor-setup.png') })
      await page.getByRole('dialog', { name: 'Two-Factor Setup' }).getByLabel('Mobile Phone Number', { exact: true }).fill('+1 555 010 9999')
      await page.getByRole('dialog', { name: 'Two-Factor Setup' }).getByLabel('Current Password', { exact: true }).fill(PASSWORD)
      await page.getByRole('dialog', { name: 'Two-Factor Setup' }).getByRole('button', { name: 'Next' }).click()
      await page.getByRole('dialog', { name: 'Two-Factor Setup' }).getByRole('heading', { name: 'Verification Code' }).waitFor()
      await page.screenshot({ path: path.join(shots, 'two-factor-code.png') })
      await page.getByRole('dialog', { name: 'Two-Factor Setup' }).getByLabel('Verification Code', { exact: true }).fill(lastSmsCode(portal).code)
      await page.getByRole('dialog', { name: 'Two-Factor Setup' }).getByRole('button', { name: 'Next' }).click()
      await page.getByText('Two-factor authentication is configured for your account.').waitFor()
      await page.screenshot({ path: path.join(shots, 'two-factor-done.png') })
      await page.getByRole('dialog', { name: 'Two-Factor Setup' }).getByLabel('Send backup email', { exact: true }).check()
      await page.getByRole('dialog', { name: 'Two-Factor Setup' }).getByLabel('Current Password', { exact: true }).fill(PASSWORD)
      await page.getByRole('dialog', { name: 'Two-Factor Setup' }).getByRole('button', { name: 'Save' }).click()
      await page.locator('#flash-region').getByText('Your backup e-mail setting was saved.').waitFor()
      await page.screenshot({ path: path.join(shots, 'my-account-2fa-on.png'), fullPage: true })
      await tfaCard(page).getByRole('link', { name: 'Add an authenticator app' }).click()
      await page.getByRole('dialog', { name: 'Authenticator App' }).getByLabel('Current Password', { exact: true }).fill(PASSWORD)
      await page.getByRole('dialog', { name: 'Authenticator App' }).getByRole('button', { name: 'Next' }).click()
      await page.getByRole('dialog', { name: 'Authenticator App' }).getByRole('img', { name: 'QR code for your authenticator app' }).waitFor()
      await page.screenshot({ path: path.join(shots, 'authenticator.png') })
      await page.keyboard.press('Escape')
      await tfaCard(page).getByRole('link', { name: 'Disable', exact: true }).click()
      await page.getByRole('alertdialog', { name: 'Disable Two-Factor' }).waitFor()
      await page.screenshot({ path: path.join(shots, 'disable-two-factor.png') })
      await page.keyboard.press('Escape')
      await signOut(page)
      await signIn(page, 'shots-2fa@example.com')
      await page.screenshot({ path: path.join(shots, 'verify-sign-in.png') })
      await page.getByRole('textbox', { name: 'Verification Code', exact: true }).fill('123')
      await page.getByRole('button', { name: 'Next' }).click()
      await page.getByText('That code is not valid or has expired.').waitFor()
      await page.screenshot({ path: path.join(shots, 'verify-sign-in-wrong.png') })
      const narrow = await newSession(t, browser, portal, MODES[0])
      await narrow.page.setViewportSize({ width: 390, height: 800 })
      await signIn(narrow.page, 'shots-2fa@example.com')
      const shot = await narrow.page.screenshot({ path: path.join(shots, 'verify-sign-in-phone.png'), fullPage: true })
      t.ok(shot.length > 0, `the last screenshot is taken (all are in ${shots})`)
    })
  }
}
