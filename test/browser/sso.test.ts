// Single sign-on across origins in a real browser: the portal on one port, the demo
// customer instance alone on another (`mssp-portal demo-instance`), a VM-licensed and a
// WAS-only account, the overlay, the logo, and the two ways back.
import { spawn } from 'node:child_process'
import crypto from 'node:crypto'
import t from 'tap'
import { PNG } from 'pngjs'
import { searchTextOf } from '../../src/areas/accounts/repository.ts'
import { ADMIN_USERNAME } from '../support/fixtures.ts'
import { freePort } from '../support/processes.ts'
import { ROOT, startPortal } from '../support/portal-process.ts'
import { MODES, browserAvailable, launchBrowser, newSession, signIn } from './chromium.ts'

t.setTimeout(120_000)


if (browserAvailable(t)) {
  const portal = await startPortal(t)
  const port = await freePort()
  const instanceUrl = `http://127.0.0.1:${port}`
  const instance = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'demo-instance', '--port', String(port), '--portal-url', portal.baseUrl], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env.PATH, HOME: process.env.HOME, DATA_DIR: portal.dataDir, LOG_LEVEL: 'warn' },
  })
  t.teardown(() => void instance.kill('SIGKILL'))
  process.once('exit', () => instance.kill('SIGKILL'))
  for (let i = 0; i < 100; i++) {
    if (await fetch(`${instanceUrl}/vm`).then(() => true, () => false)) break
    await new Promise((r) => setTimeout(r, 200))
  }
  // Two accounts on the instance: one licensed for VM (with a logo), one for WAS only.
  portal.withDb((db) => {
    const now = Date.now()
    const png = new PNG({ width: 80, height: 30 })
    for (let i = 0; i < png.data.length; i += 4) png.data.set([200, 30, 30, 255], i)
    db.prepare('insert into logos (uuid, name, filename, png, width, height, created_at, updated_at) values (?, ?, ?, ?, 80, 30, ?, ?)').run(crypto.randomUUID(), 'Red', 'red.png', PNG.sync.write(png), now, now)
    const logoId = (db.prepare('select id from logos').get() as { id: number }).id
    const insert = db.prepare(`insert into accounts (uuid, container_name, licensed_apps, instance_url, logo_id, domains, search_text, created_at, modified_at) values (?, ?, ?, ?, ?, '[]', ?, ?, ?)`)
    insert.run(crypto.randomUUID(), 'Vantage VM Corp', 'vm,was', instanceUrl, logoId, searchTextOf({ container_name: 'Vantage VM Corp', custom_name: null, site_id: null, licensed_apps: 'vm,was', notes: '' }), now, now)
    insert.run(crypto.randomUUID(), 'Webonly WAS Ltd', 'was', instanceUrl, null, searchTextOf({ container_name: 'Webonly WAS Ltd', custom_name: null, site_id: null, licensed_apps: 'was', notes: '' }), now, now)
  })
  const browser = await launchBrowser(t)

  for (const mode of MODES) {
    t.test(`${mode.name}: sign in to a VM and a WAS-only instance, see the overlay and logo, come back`, async (t) => {
      const { page, problems } = await newSession(t, browser, portal, mode)
      await signIn(page, ADMIN_USERNAME)
      await page.getByRole('button', { name: 'Sign in to the instance of Vantage VM Corp' }).click()
      if (!mode.javaScriptEnabled) await page.getByRole('button', { name: 'Continue' }).click()
      await page.waitForURL(`${instanceUrl}/vm`)
      t.ok(await page.getByRole('heading', { name: 'Vulnerability Management' }).first().isVisible(), 'the VM interface opens')
      const frame = page.getByRole('region', { name: 'MSSP Portal' })
      t.match(await frame.textContent(), 'Signed in through the MSSP Portal', 'the blue MSSP overlay shows')
      t.match(await frame.textContent(), 'Administrator', 'the overlay names the Administrator role')
      const logo = page.getByRole('img', { name: 'Vantage VM Corp logo' })
      t.ok(await logo.isVisible(), "the account's logo is in the header")
      t.match(await logo.getAttribute('src'), /account-logo$/, 'the logo from the portal, not the default')
      await frame.getByRole('link', { name: 'Back to MSSP Portal' }).click()
      await page.locator('h1', { hasText: 'Accounts' }).waitFor()
      t.equal(page.url(), `${portal.baseUrl}/accounts`, 'the overlay button returns to Accounts')

      await page.getByRole('button', { name: 'Sign in to the instance of Webonly WAS Ltd' }).click()
      if (!mode.javaScriptEnabled) await page.getByRole('button', { name: 'Continue' }).click()
      await page.waitForURL(`${instanceUrl}/was`)
      t.ok(await page.getByRole('heading', { name: 'Web Application Scanning' }).first().isVisible(), 'a WAS-only account opens WAS')
      const menu = page.getByLabel(/User menu for/)
      await menu.click()
      await page.getByRole('button', { name: 'Leave User' }).click()
      await page.locator('h1', { hasText: 'Accounts' }).waitFor()
      t.equal(page.url(), `${portal.baseUrl}/accounts`, 'Leave User returns to the portal')
      t.same(problems, [], 'no page errors, console errors or server errors')
    })
  }
}
