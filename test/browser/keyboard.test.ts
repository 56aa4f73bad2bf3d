// Keyboard use in a real browser: signing in without a mouse, and the header menus
// (Navigation, Resource Center, User account menu) opening with Enter and Space on the
// focused summary, with and without JavaScript.
import t from 'tap'
import type { Page } from 'playwright-core'
import { ADMIN_USERNAME, PASSWORD } from '../support/fixtures.ts'
import { startPortal } from '../support/portal-process.ts'
import { MODES, browserAvailable, launchBrowser, newSession } from './chromium.ts'

t.setTimeout(120_000)

const MENUS = [
  { label: 'Navigation', shows: 'Users' },
  { label: 'Resource Center', shows: null },
  { label: 'User account menu', shows: 'My Account' },
] as const

const focusedName = (page: Page) =>
  page.evaluate(() => {
    const el = document.activeElement
    return el ? `${el.tagName.toLowerCase()}:${el.getAttribute('aria-label') ?? el.getAttribute('name') ?? el.textContent?.trim()}` : ''
  })

if (browserAvailable(t)) {
  const portal = await startPortal(t)
  const browser = await launchBrowser(t)

  for (const mode of MODES) {
    t.test(`${mode.name}: keyboard only`, async (t) => {
      const { page, problems } = await newSession(t, browser, portal, mode)
      await page.goto('/login')

      // Sign in with the keyboard alone: Tab through the form, Enter on Sign In.
      await page.getByLabel('Username', { exact: true }).focus()
      await page.keyboard.type(ADMIN_USERNAME)
      await page.keyboard.press('Tab')
      t.equal(await focusedName(page), 'input:password', 'Tab goes from Username to Password')
      await page.keyboard.type(PASSWORD)
      await page.keyboard.press('Tab')
      t.equal(await focusedName(page), 'input:remember_me', 'then to Remember Me')
      await page.keyboard.press('Tab')
      t.equal(await focusedName(page), 'button:Sign In', 'then to Sign In')
      await page.keyboard.press('Enter')
      await page.waitForURL('**/accounts')
      t.equal(new URL(page.url()).pathname, '/accounts', 'Enter on Sign In signs in')
      await page.keyboard.press('Tab')
      t.equal(await focusedName(page), 'a:Skip to content', 'the first Tab reaches Skip to content')
      await page.keyboard.press('Tab')
      t.equal(await focusedName(page), 'summary:Navigation', 'the next one the Navigation menu')

      for (const menu of MENUS) {
        const details = page.locator('details.menu', { has: page.locator(`summary[aria-label="${menu.label}"]`) })
        const summary = details.locator('summary')
        const isOpen = () => details.evaluate((d: HTMLDetailsElement) => d.open)
        await summary.focus()
        t.equal(await focusedName(page), `summary:${menu.label}`, `${menu.label}: the summary takes focus`)
        t.notOk(await isOpen(), `${menu.label}: closed at first`)
        await page.keyboard.press('Enter')
        t.ok(await isOpen(), `${menu.label}: Enter opens it`)
        if (menu.shows) t.ok(await details.getByRole('link', { name: menu.shows }).isVisible(), `${menu.label}: shows ${menu.shows}`)
        await page.keyboard.press('Enter')
        t.notOk(await isOpen(), `${menu.label}: Enter again closes it`)
        await page.keyboard.press('Space')
        t.ok(await isOpen(), `${menu.label}: Space opens it`)
        if (mode.javaScriptEnabled) {
          await page.keyboard.press('Escape')
          t.notOk(await isOpen(), `${menu.label}: Escape closes it`)
          t.equal(await focusedName(page), `summary:${menu.label}`, `${menu.label}: focus returns to the summary`)
        } else {
          await page.keyboard.press('Space')
          t.notOk(await isOpen(), `${menu.label}: Space again closes it`)
        }
      }

      // Sign out with the keyboard: open the user account menu, Tab to Sign Out, Enter.
      await page.locator('summary[aria-label="User account menu"]').focus()
      await page.keyboard.press('Enter')
      await page.keyboard.press('Tab')
      t.equal(await focusedName(page), 'a:My Account', 'Tab reaches My Account')
      await page.keyboard.press('Tab')
      t.equal(await focusedName(page), 'button:Sign Out', 'then Sign Out')
      await page.keyboard.press('Enter')
      await page.waitForURL('**/login?m=signed-out')
      t.ok(await page.getByText('You have signed out.').isVisible(), 'Enter on Sign Out signs out')
      t.same(problems, [], 'no page errors, console errors or server errors')
    })
  }
}
