// Sign In, Sign Out and a wrong password in a real browser against the real portal,
// with and without JavaScript.
import t from 'tap'
import { ADMIN_USERNAME, PASSWORD } from '../support/fixtures.ts'
import { startPortal } from '../support/portal-process.ts'
import { MODES, browserAvailable, launchBrowser, newSession, signIn } from './chromium.ts'

t.setTimeout(120_000)

if (browserAvailable(t)) {
  const portal = await startPortal(t)
  const browser = await launchBrowser(t)

  for (const mode of MODES) {
    t.test(`${mode.name}: sign in by the labels, land on Accounts, sign out from the user account menu`, async (t) => {
      const { page, problems } = await newSession(t, browser, portal, mode)
      await page.goto('/')
      t.equal(new URL(page.url()).pathname, '/login', '/ sends a signed-out visitor to the Log in page')
      t.ok(await page.getByRole('link', { name: 'Forgot Password' }).isVisible(), 'Forgot Password link shown')
      t.ok(await page.getByLabel('Remember Me', { exact: true }).isVisible(), 'Remember Me checkbox shown')
      t.notOk(await page.getByLabel('Remember Me', { exact: true }).isChecked(), 'Remember Me starts unticked')

      await signIn(page, ADMIN_USERNAME)
      t.equal(new URL(page.url()).pathname, '/accounts', 'landed on Accounts')
      t.equal(await page.locator('h1').first().textContent(), 'Accounts', 'the heading is Accounts')

      // The header menus: Navigation lists the admin pages.
      const nav = page.locator('details.nav-menu')
      t.notOk(await page.getByRole('link', { name: 'Users' }).isVisible(), 'navigation closed at first')
      await page.getByLabel('Navigation', { exact: true }).click()
      t.ok(await nav.evaluate((d: HTMLDetailsElement) => d.open), 'navigation menu opens')
      for (const name of ['Accounts', 'Users', 'Logos']) {
        t.ok(await nav.getByRole('link', { name, exact: true }).isVisible(), `navigation shows ${name}`)
      }

      const userMenu = page.locator('details.user-menu')
      await userMenu.locator('summary').click()
      t.ok(await userMenu.evaluate((d: HTMLDetailsElement) => d.open), 'user account menu opens')
      t.ok(await userMenu.getByRole('link', { name: 'My Account' }).isVisible(), 'My Account shown')
      t.match(await userMenu.textContent(), ADMIN_USERNAME, 'the menu names the signed-in user')
      if (mode.javaScriptEnabled) {
        t.notOk(await nav.evaluate((d: HTMLDetailsElement) => d.open), 'opening one menu closes the other')
      }
      await userMenu.getByRole('button', { name: 'Sign Out' }).click()
      await page.waitForURL('**/login?m=signed-out')
      t.ok(await page.getByText('You have signed out.').isVisible(), 'signed-out notice')

      await page.goto('/accounts')
      t.equal(new URL(page.url()).pathname, '/login', 'Accounts needs signing in again')
      t.equal(new URL(page.url()).searchParams.get('next'), '/accounts', 'and comes back to it')
      await page.getByLabel('Username', { exact: true }).fill(ADMIN_USERNAME)
      await page.getByLabel('Password', { exact: true }).fill(PASSWORD)
      await page.getByRole('button', { name: 'Sign In' }).click()
      await page.waitForURL('**/accounts')
      t.equal(new URL(page.url()).pathname, '/accounts', 'signing in from ?next= returns to Accounts')
      t.same(problems, [], 'no page errors, console errors or server errors')
    })

    t.test(`${mode.name}: a wrong password is refused`, async (t) => {
      const { page, problems } = await newSession(t, browser, portal, mode)
      await signIn(page, ADMIN_USERNAME, 'Wrong-Password-123!')
      t.equal(new URL(page.url()).pathname, '/login', 'stays on the Log in page')
      t.ok(await page.getByText('Invalid username or password.').isVisible(), 'says Invalid username or password.')
      t.equal(await page.getByLabel('Username', { exact: true }).inputValue(), ADMIN_USERNAME, 'keeps the username typed')
      t.equal(await page.getByLabel('Password', { exact: true }).inputValue(), '', 'never echoes the password')
      await page.goto('/accounts')
      t.equal(new URL(page.url()).pathname, '/login', 'not signed in')
      const unknown = await newSession(t, browser, portal, mode)
      await signIn(unknown.page, 'nobody@example.com')
      t.ok(await unknown.page.getByText('Invalid username or password.').isVisible(), 'an unknown user gets the same words')
      // The right password still works afterwards (one failure does not lock).
      await signIn(page, ADMIN_USERNAME)
      t.equal(new URL(page.url()).pathname, '/accounts', 'the right password still works')
      t.same([...problems, ...unknown.problems], [], 'no page errors, console errors or server errors')
    })
  }
}
