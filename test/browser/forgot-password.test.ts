// Forgot Password end to end in a real browser: request the link, read it from the outbox
// table, choose a new password, sign in with it; the old password and the used link fail.
import t from 'tap'
import { PASSWORD } from '../support/fixtures.ts'
import { startPortal } from '../support/portal-process.ts'
import { MODES, appears, browserAvailable, launchBrowser, newSession, signIn } from './chromium.ts'

t.setTimeout(120_000)

const NEW_PASSWORD = 'Purple-Staple-77-Lantern'

if (browserAvailable(t)) {
  const portal = await startPortal(t)
  const browser = await launchBrowser(t)

  for (const mode of MODES) {
    t.test(`${mode.name}: Forgot Password`, async (t) => {
      const username = `reset-${mode.javaScriptEnabled ? 'js' : 'nojs'}@example.com`
      await portal.createAdministrator(username, 'Rita Reset')

      // A session signed in elsewhere before the reset: the reset ends it.
      const elsewhere = await newSession(t, browser, portal, mode)
      await signIn(elsewhere.page, username)
      t.equal(new URL(elsewhere.page.url()).pathname, '/accounts', 'signed in elsewhere')

      const { page, problems } = await newSession(t, browser, portal, mode)
      await page.goto('/login')
      await page.getByRole('link', { name: 'Forgot Password' }).click()
      await page.waitForURL('**/forgot-password')
      t.equal(await page.locator('h1').textContent(), 'Forgot Password', 'on the Forgot Password page')

      // An unknown username gets the same answer and no mail.
      await page.getByLabel('Username', { exact: true }).fill('nobody@example.com')
      await page.getByRole('button', { name: 'Send Reset Link' }).click()
      await page.getByText('If an account with that username exists, we have sent a link').waitFor()
      t.equal(portal.lastMailTo('nobody@example.com'), undefined, 'no mail for an unknown username')

      await page.goto('/forgot-password')
      await page.getByLabel('Username', { exact: true }).fill(username.toUpperCase())
      await page.getByRole('button', { name: 'Send Reset Link' }).click()
      t.ok(await appears(page.getByText('If an account with that username exists, we have sent a link')), 'says the link was sent')

      const mail = portal.lastMailTo(username)
      t.ok(mail, 'a mail is in the outbox')
      t.match(mail?.subject ?? '', /reset/i, 'about a password reset')
      const link = new RegExp(`${portal.baseUrl.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/reset-password\\?token=[A-Za-z0-9_-]+`).exec(mail?.body ?? '')?.[0]
      t.ok(link, `the mail has a ${portal.baseUrl}/reset-password?token=… link`)
      if (!link) return

      await page.goto(link)
      t.equal(await page.locator('h1').textContent(), 'Choose a New Password', 'on the reset page')

      // Verify Password must match.
      await page.getByLabel('New Password', { exact: true }).fill(NEW_PASSWORD)
      await page.getByLabel('Verify Password', { exact: true }).fill(NEW_PASSWORD + 'x')
      await page.getByRole('button', { name: 'Save' }).click()
      t.ok(await appears(page.getByText('The passwords do not match.')), 'a mismatch is refused: The passwords do not match.')

      await page.getByLabel('New Password', { exact: true }).fill(NEW_PASSWORD)
      await page.getByLabel('Verify Password', { exact: true }).fill(NEW_PASSWORD)
      await page.getByRole('button', { name: 'Save' }).click()
      await page.waitForURL('**/login?m=reset')
      t.ok(await page.getByText('Your password has been reset. Sign in with your new password.').isVisible(), 'reset notice on the Log in page')

      await elsewhere.page.reload()
      t.equal(new URL(elsewhere.page.url()).pathname, '/login', 'the reset ended the session signed in elsewhere')

      await signIn(page, username, PASSWORD)
      t.ok(await page.getByText('Invalid username or password.').isVisible(), 'the old password no longer works')

      await signIn(page, username, NEW_PASSWORD)
      t.equal(new URL(page.url()).pathname, '/accounts', 'the new password signs in')
      await page.locator('details.user-menu summary').click()
      await page.getByRole('button', { name: 'Sign Out' }).click()
      await page.waitForURL('**/login?m=signed-out')

      await page.goto(link)
      t.ok(await page.getByText('This link is invalid, has expired or has been used already.').isVisible(), 'the link works once')
      t.equal(await page.getByLabel('New Password', { exact: true }).count(), 0, 'no password form on a used link')
      t.same([...problems, ...elsewhere.problems], [], 'no page errors, console errors or server errors')
    })
  }
}
