// My Account in a real browser, by the guide's labels, with and without JavaScript:
// "Update Your User Account", "Change Your Password" (then sign out and in with the new
// one) and "Generate Your API Keys" (the window's warning, keys shown once, copy buttons
// with JavaScript). "Configure Two-Factor Authentication" is in two-factor.test.ts.
import fs from 'node:fs'
import path from 'node:path'
import t from 'tap'
import type { Page } from 'playwright-core'
import { BASIC, PASSWORD } from '../support/fixtures.ts'
import { startPortal, type PortalProcess as Portal } from '../support/portal-process.ts'
import { MODES, appears, browserAvailable, launchBrowser, newSession, signIn } from './chromium.ts'

t.setTimeout(180_000)

const NEW_PASSWORD = 'Lantern-Quartz-93-Ribbon!'
// htmx logs the swaps of its deliberate 4xx answers as errors; nothing else may appear.
const HTMX_4XX = /htmx:responseError|Response Status Error Code 4\d\d/

/** A Basic user (the least role the guide names) with an e-mail address, made by the CLI. */
async function createBasicUser(portal: Portal, username: string, name: string, email: string) {
  const res = await portal.cli(['create-admin', '--username', username, '--name', name, '--email', email], `${PASSWORD}\n`)
  if (res.code !== 0) throw new Error(`create-admin ${username} failed:\n${res.stdout}${res.stderr}`)
  portal.withDb((db) => db.prepare('update users set role = ? where username = ?').run(BASIC, username))
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

async function apiSession(portal: Portal, keys: { access: string; secret: string }) {
  return fetch(`${portal.baseUrl}/api/session`, { headers: { 'X-ApiKeys': `accessKey=${keys.access};secretKey=${keys.secret}` } })
}

const flash = (page: Page) => page.locator('#flash-region')

if (browserAvailable(t)) {
  const portal = await startPortal(t)
  const browser = await launchBrowser(t)
  // One at a time: two CLI processes migrating the same SQLite file at once meet a lock.
  for (const mode of MODES) {
    const tag = mode.javaScriptEnabled ? 'js' : 'nojs'
    await createBasicUser(portal, `profile-${tag}@example.com`, `Pat Profile ${tag}`, `pat-${tag}@mail.example.com`)
    await createBasicUser(portal, `keys-${tag}@example.com`, `Kim Keys ${tag}`, `kim-${tag}@mail.example.com`)
  }

  for (const mode of MODES) {
    const js = mode.javaScriptEnabled
    const tag = js ? 'js' : 'nojs'

    t.test(`${mode.name}: Update Your User Account, then Change Your Password`, async (t) => {
      const username = `profile-${tag}@example.com`
      const oldEmail = `pat-${tag}@mail.example.com`
      const newEmail = `patricia-${tag}@mail.example.com`
      const { page, problems } = await newSession(t, browser, portal, mode)
      await signIn(page, username)
      await openMyAccount(page)
      t.equal(await page.getByRole('link', { name: 'Account', exact: true }).getAttribute('aria-current'), 'page', 'the Account tab is current')
      t.ok(await page.getByRole('link', { name: 'API Keys', exact: true }).isVisible(), 'the API Keys tab')

      // Update Your User Account: Name, Email, Save.
      const account = page.getByRole('region', { name: 'Account', exact: true })
      t.equal(await account.getByLabel('Name', { exact: true }).inputValue(), `Pat Profile ${tag}`, 'Name shows the current name')
      t.equal(await account.getByLabel('Email', { exact: true }).inputValue(), oldEmail, 'Email shows the current address')
      await account.getByLabel('Name', { exact: true }).fill(`Patricia Profile ${tag}`)
      await account.getByLabel('Email', { exact: true }).fill(newEmail)
      await account.getByRole('button', { name: 'Save' }).click()
      // A new e-mail address needs the current password (the guide does not say so; the hint does).
      t.ok(await appears(page.getByText('Enter your current password to change your e-mail address.')), 'a new e-mail without the current password is refused with the reason')
      const again = page.getByRole('region', { name: 'Account', exact: true })
      t.equal(await again.getByLabel('Email', { exact: true }).inputValue(), newEmail, 'what was typed is kept')
      t.equal(await again.getByLabel('Current Password', { exact: true }).getAttribute('aria-invalid'), 'true', 'the box is marked')
      await again.getByLabel('Current Password', { exact: true }).fill(PASSWORD)
      await again.getByRole('button', { name: 'Save' }).click()
      await flash(page).getByText('Your account changes were saved.').waitFor()
      t.equal(new URL(page.url()).pathname, '/my-account', 'back on My Account')
      t.equal(await page.getByRole('region', { name: 'Account', exact: true }).getByLabel('Name', { exact: true }).inputValue(), `Patricia Profile ${tag}`, 'the new name')
      t.equal(await page.getByRole('region', { name: 'Account', exact: true }).getByLabel('Email', { exact: true }).inputValue(), newEmail, 'the new e-mail')
      t.match(await page.locator('details.user-menu').textContent(), `Patricia Profile ${tag}`, 'the user account menu shows the new name')
      t.equal(await page.locator('details.user-menu .avatar').textContent(), 'P', 'the avatar shows the new name\'s initial')
      const notice = portal.lastMailTo(oldEmail)
      t.match(notice?.subject ?? '', /e-mail address was changed/, 'the old address is told')

      // Change Your Password: Current Password, New Password, Save. A session elsewhere ends.
      const elsewhere = await newSession(t, browser, portal, mode)
      await signIn(elsewhere.page, username)
      t.equal(new URL(elsewhere.page.url()).pathname, '/accounts', 'also signed in elsewhere')
      const change = page.getByRole('region', { name: 'Change Password' })
      t.match(await change.textContent(), /At least 12 characters with an uppercase letter, a lowercase letter, a number and a special character/, 'the rule is shown')
      await change.getByLabel('Current Password', { exact: true }).fill(PASSWORD)
      await change.getByLabel('New Password', { exact: true }).fill('too-simple')
      await change.getByRole('button', { name: 'Save' }).click()
      t.ok(await appears(page.getByText('Passwords must be at least 12 characters long')), 'a password against the rule is refused')
      const retry = page.getByRole('region', { name: 'Change Password' })
      t.equal(await retry.getByLabel('New Password', { exact: true }).inputValue(), '', 'passwords are never echoed')
      await retry.getByLabel('Current Password', { exact: true }).fill(PASSWORD)
      await retry.getByLabel('New Password', { exact: true }).fill(NEW_PASSWORD)
      await retry.getByRole('button', { name: 'Save' }).click()
      t.ok(await appears(flash(page).getByText('Your password was changed.')), 'the portal saves the new password')
      t.match(portal.lastMailTo(newEmail)?.subject ?? '', /password was changed/, 'a notice mail')
      await page.reload()
      t.equal(new URL(page.url()).pathname, '/my-account', 'this session goes on')
      await elsewhere.page.goto('/accounts')
      t.equal(new URL(elsewhere.page.url()).pathname, '/login', 'the other session is signed out')

      await signOut(page)
      await signIn(page, username, PASSWORD)
      t.ok(await page.getByText('Invalid username or password.').isVisible(), 'the old password is refused')
      await signIn(page, username, NEW_PASSWORD)
      t.equal(new URL(page.url()).pathname, '/accounts', 'the new password signs in')
      t.same([...problems, ...elsewhere.problems].filter((p) => !HTMX_4XX.test(p)), [], 'no page errors, console errors (CSP included) or server errors')
    })

    t.test(`${mode.name}: Generate Your API Keys`, async (t) => {
      const username = `keys-${tag}@example.com`
      const { context, page, problems } = await newSession(t, browser, portal, mode)
      if (js) await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: portal.baseUrl })
      await signIn(page, username)
      await openMyAccount(page)

      // 3. The API Keys tab; 4. Generate: the Generate API Keys window with its warning.
      await page.getByRole('link', { name: 'API Keys', exact: true }).click()
      await page.waitForURL('**/my-account/api-keys')
      t.ok(await page.getByRole('heading', { name: 'API Keys', level: 2 }).isVisible(), 'the API Keys section')
      t.ok(await page.getByText('You have no API keys yet.').isVisible(), 'the page says there are no keys yet')
      await page.getByRole('link', { name: 'Generate', exact: true }).click()
      const window = page.getByRole('alertdialog', { name: 'Generate API Keys' })
      await window.waitFor()
      t.equal(new URL(page.url()).pathname, js ? '/my-account/api-keys' : '/my-account/api-keys/generate', js ? 'a window over the page' : 'a page of its own')
      t.match(await window.textContent(), /Any existing API keys are replaced when you click the Generate button\. You must update the applications where the previous API keys were used\./, 'the warning')

      // 5. Generate: access and secret keys, shown once.
      await window.getByRole('button', { name: 'Generate', exact: true }).click()
      const shown = page.getByRole('dialog', { name: 'API Keys' })
      await shown.waitFor()
      t.match(await shown.textContent(), /Copy and save these keys to a safe location now/, 'the caution to save them')
      const first = { access: await shown.getByLabel('Access Key', { exact: true }).inputValue(), secret: await shown.getByLabel('Secret Key', { exact: true }).inputValue() }
      t.match(first.access, /^[0-9a-f]{64}$/, 'an access key')
      t.match(first.secret, /^[0-9a-f]{64}$/, 'a secret key')
      const copyAccess = shown.getByRole('button', { name: 'Copy the access key' })
      const copySecret = shown.getByRole('button', { name: 'Copy the secret key' })
      // htmx shows them once the swap has settled (a few milliseconds after the plane appears).
      if (js) await copyAccess.waitFor({ state: 'visible', timeout: 3_000 }).catch(() => {})
      t.equal(await copyAccess.isVisible(), js, js ? 'a copy button for the access key' : 'no copy buttons without JavaScript')
      t.equal(await copySecret.isVisible(), js, 'a copy button for the secret key only with JavaScript')
      if (js) {
        await copySecret.click()
        await shown.getByRole('button', { name: 'Copy the secret key' }).and(page.locator('[data-copied]')).waitFor()
        t.equal(await copySecret.textContent(), 'Copied', 'the button says Copied')
        t.equal(await page.evaluate(() => navigator.clipboard.readText()), first.secret, 'the secret key is on the clipboard')
        await copyAccess.click()
        await page.waitForFunction(() => document.querySelector('[data-copy-target="access-key"]')?.textContent === 'Copied')
        t.equal(await page.evaluate(() => navigator.clipboard.readText()), first.access, 'then the access key')
      }
      const me = await apiSession(portal, first)
      t.equal(me.status, 200, 'the keys authenticate with the REST API')
      t.match(await me.json(), { username, permissions: BASIC }, 'the keys act as this user with the Basic role')

      await shown.getByRole('link', { name: 'Done' }).click()
      await page.waitForURL('**/my-account/api-keys')
      await page.getByText('You have API keys.').waitFor()
      t.notMatch(await page.content(), first.secret, 'the secret is not shown again')

      // Generating again replaces the keys: the first pair stops working at once.
      await page.getByRole('link', { name: 'Generate', exact: true }).click()
      await page.getByRole('alertdialog', { name: 'Generate API Keys' }).getByRole('button', { name: 'Generate', exact: true }).click()
      const again = page.getByRole('dialog', { name: 'API Keys' })
      await again.waitFor()
      const second = { access: await again.getByLabel('Access Key', { exact: true }).inputValue(), secret: await again.getByLabel('Secret Key', { exact: true }).inputValue() }
      t.not(second.secret, first.secret, 'new keys')
      t.equal((await apiSession(portal, first)).status, 401, 'the previous keys are refused')
      t.equal((await apiSession(portal, second)).status, 200, 'the new keys work')

      // Closing the window: ✕ (with JavaScript it just closes the plane).
      await again.getByRole('link', { name: 'Close' }).click()
      await page.getByText('You have API keys.').waitFor()
      t.equal(await page.getByRole('dialog').count(), 0, 'the window is closed')
      t.same(problems.filter((p) => !HTMX_4XX.test(p)), [], 'no page errors, console errors (CSP included) or server errors')
    })
  }

  // Screenshots for a person to look at (MY_ACCOUNT_SCREENSHOT_DIR=...).
  const shots = process.env.MY_ACCOUNT_SCREENSHOT_DIR
  if (shots) {
    t.test('screenshots', async (t) => {
      fs.mkdirSync(shots, { recursive: true })
      await createBasicUser(portal, 'shots-account@example.com', 'Shona Shots', 'shona@mail.example.com')
      const { page } = await newSession(t, browser, portal, MODES[0])
      await page.setViewportSize({ width: 1280, height: 800 })
      await signIn(page, 'shots-account@example.com')
      await openMyAccount(page)
      await page.screenshot({ path: path.join(shots, 'my-account.png'), fullPage: true })
      const account = page.getByRole('region', { name: 'Account', exact: true })
      await account.getByLabel('Email', { exact: true }).fill('not-an-address')
      await account.getByRole('button', { name: 'Save' }).click()
      await page.getByText('Enter a valid e-mail address.').waitFor()
      await page.screenshot({ path: path.join(shots, 'my-account-error.png'), fullPage: true })
      await page.getByRole('link', { name: 'API Keys', exact: true }).click()
      await page.waitForURL('**/my-account/api-keys')
      await page.screenshot({ path: path.join(shots, 'api-keys.png') })
      await page.getByRole('link', { name: 'Generate', exact: true }).click()
      await page.getByRole('alertdialog', { name: 'Generate API Keys' }).waitFor()
      await page.screenshot({ path: path.join(shots, 'generate-keys.png') })
      await page.getByRole('alertdialog', { name: 'Generate API Keys' }).getByRole('button', { name: 'Generate', exact: true }).click()
      await page.getByRole('dialog', { name: 'API Keys' }).waitFor()
      await page.screenshot({ path: path.join(shots, 'generated-keys.png') })
      const narrow = await newSession(t, browser, portal, MODES[0])
      await narrow.page.setViewportSize({ width: 390, height: 800 })
      await signIn(narrow.page, 'shots-account@example.com')
      await openMyAccount(narrow.page)
      const shot = await narrow.page.screenshot({ path: path.join(shots, 'my-account-phone.png'), fullPage: true })
      t.ok(shot.length > 0, `the last screenshot is taken (all are in ${shots})`)
    })
  }
}
