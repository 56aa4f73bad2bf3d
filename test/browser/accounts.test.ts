// The Accounts procedures of the guide in a real browser, by their labels, with and
// without JavaScript: search, Account Details for Support Ticket, Edit Account with its
// Custom Name Update History, and Assign/Remove a Logo through the Selected bar.
import crypto from 'node:crypto'
import t from 'tap'
import { PNG } from 'pngjs'
import { searchTextOf } from '../../src/areas/accounts/repository.ts'
import { ADMIN_USERNAME } from '../support/fixtures.ts'
import { startPortal, type PortalProcess as Portal } from '../support/portal-process.ts'
import { MODES, browserAvailable, launchBrowser, newSession, signIn } from './chromium.ts'

t.setTimeout(120_000)

function seed(portal: Portal, prefix: string): { acme: string; bluefin: string; logo: string } {
  return portal.withDb((db) => {
    const now = Date.now()
    const insert = db.prepare(`insert into accounts (uuid, container_name, site_id, region, licensed_apps, licensed_assets, licensed_assets_limit,
      license_utilization, license_expiration_date, notes, domains, search_text, created_at, modified_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '[]', ?, ?, ?)`)
    const make = (name: string, site: string, apps: string, notes: string) => {
      const id = crypto.randomUUID()
      insert.run(id, name, site, 'EU', apps, 40, 50, 80, now + 90 * 86_400_000, notes, searchTextOf({ container_name: name, custom_name: null, site_id: site, licensed_apps: apps, notes }), now, now)
      return id
    }
    const png = new PNG({ width: 120, height: 40 })
    png.data.fill(200)
    const logo = crypto.randomUUID()
    db.prepare('insert into logos (uuid, name, filename, png, width, height, created_at, updated_at) values (?, ?, ?, ?, 120, 40, ?, ?)').run(logo, `${prefix} Wave`, 'wave.png', PNG.sync.write(png), now, now)
    return {
      acme: make(`${prefix} Acme Logistics`, `${prefix}-EU-1`, 'vm,was', 'Quarterly review'),
      bluefin: make(`${prefix} Bluefin Capital`, `${prefix}-EU-2`, 'cs', ''),
      logo,
    }
  })
}

if (browserAvailable(t)) {
  const portal = await startPortal(t)
  const browser = await launchBrowser(t)

  for (const [i, mode] of MODES.entries()) {
    const prefix = i === 0 ? 'Js' : 'Plain'
    t.test(`${mode.name}: search, details, edit, assign and remove a logo`, async (t) => {
      const ids = seed(portal, prefix)
      const { page, problems } = await newSession(t, browser, portal, mode)
      await signIn(page, ADMIN_USERNAME)
      t.equal(new URL(page.url()).pathname, '/accounts', 'signing in lands on Accounts')

      // Search (the box and its button)
      await page.getByLabel('Search', { exact: true }).first().fill(`${prefix} acme`)
      await page.getByRole('button', { name: 'Search', exact: true }).click()
      await page.waitForURL(/q=/)
      await page.getByText('1 account matching').waitFor()
      t.ok(await page.getByRole('cell', { name: `${prefix} Acme Logistics`, exact: true }).isVisible(), 'the matching account is listed')
      t.equal(await page.getByRole('cell', { name: `${prefix} Bluefin Capital`, exact: true }).count(), 0, 'the other is filtered out')
      t.match(decodeURIComponent(page.url()).replace(/\+/g, ' '), `q=${prefix} acme`, 'the URL keeps the search')

      // Account Details for Support Ticket: the row action, reachable by keyboard
      const details = page.getByRole('link', { name: `View details for ${prefix} Acme Logistics` })
      await details.focus()
      t.ok(await details.isVisible(), 'the row action shows on keyboard focus')
      await page.keyboard.press('Enter')
      const plane = page.getByRole('dialog', { name: 'Account Details for Support Ticket' })
      await plane.waitFor()
      t.match(await plane.textContent(), ids.acme, 'the details include the UUID')
      const box = page.getByLabel('Details as plain text')
      t.match(await box.inputValue(), `Customer Name: ${prefix} Acme Logistics`, 'the plain text is there to select')
      if (mode.javaScriptEnabled) {
        await page.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: portal.baseUrl })
        await plane.getByRole('button', { name: 'Copy details to clipboard' }).click()
        const copied = await page.evaluate(() => navigator.clipboard.readText())
        t.match(copied, `Account UUID: ${ids.acme}`, 'the copy button puts the details on the clipboard')
        await plane.getByRole('link', { name: 'Close' }).click()
      } else {
        t.notOk(await plane.getByRole('button', { name: 'Copy details to clipboard' }).isVisible(), 'no copy button without JavaScript')
        await page.goto('/accounts')
      }

      // Edit Account: Custom Name, Notes, Submit; the history records the change
      await page.goto(`/accounts?q=${prefix}+acme`)
      await page.getByRole('link', { name: `Edit ${prefix} Acme Logistics` }).click()
      const edit = page.getByRole('dialog', { name: 'Edit Account' })
      await edit.waitFor()
      await edit.getByLabel('Custom Name').fill(`${prefix} Acme EU`)
      await edit.getByLabel('Notes').fill('Call Jana first')
      await edit.getByRole('button', { name: 'Submit' }).click()
      await page.getByText('Account changes saved successfully.').first().waitFor()
      if (mode.javaScriptEnabled) {
        t.ok(await edit.getByRole('cell', { name: `${prefix} Acme EU`, exact: true }).isVisible(), 'the Custom Name Update History shows the change')
        await page.getByRole('cell', { name: `${prefix} Acme EU`, exact: true }).nth(0).waitFor()
      } else {
        await page.goto(`/accounts/${ids.acme}/edit`)
        t.ok(await page.getByRole('cell', { name: `${prefix} Acme EU`, exact: true }).isVisible(), 'the Custom Name Update History shows the change')
      }

      // Assign a logo: check boxes, the Selected bar's ☆, the Logo drop-down, Save
      await page.goto(`/accounts?q=${prefix}`)
      t.notOk(await page.getByRole('region', { name: 'Selected' }).isVisible(), 'no Selected bar before a check')
      await page.getByLabel(`Select ${prefix} Acme Logistics`).check()
      await page.getByLabel(`Select ${prefix} Bluefin Capital`).check()
      const bar = page.getByRole('region', { name: 'Selected' })
      t.ok(await bar.isVisible(), 'the Selected bar appears at the bottom')
      if (mode.javaScriptEnabled) t.match(await bar.textContent(), '2 Selected', 'the bar counts the selection')
      else t.match(await bar.textContent(), 'Selected', 'the bar says Selected')
      await bar.getByRole('button', { name: 'Assign logo' }).click()
      const assign = page.getByRole('dialog', { name: 'Assign Logo to Accounts' })
      await assign.waitFor()
      await assign.getByLabel('Logo').selectOption({ label: `${prefix} Wave` })
      await assign.getByRole('button', { name: 'Save' }).click()
      await page.getByText('Logo assigned to all selected accounts').first().waitFor()
      await page.goto(`/accounts?q=${prefix}`)
      t.equal(await page.getByRole('img', { name: `${prefix} Wave` }).count(), 2, 'both rows show the logo')

      // Remove it from one: (No Logo)
      await page.getByLabel(`Select ${prefix} Bluefin Capital`).check()
      await page.getByRole('region', { name: 'Selected' }).getByRole('button', { name: 'Assign logo' }).click()
      await page.getByRole('dialog', { name: 'Assign Logo to Accounts' }).getByLabel('Logo').selectOption({ label: '(No Logo)' })
      await page.getByRole('dialog', { name: 'Assign Logo to Accounts' }).getByRole('button', { name: 'Save' }).click()
      await page.getByText('Logo assigned to all selected accounts').first().waitFor()
      await page.goto(`/accounts?q=${prefix}`)
      t.equal(await page.getByRole('img', { name: `${prefix} Wave` }).count(), 1, 'the logo left the one account')
      t.same(problems, [], 'no page errors, console errors or server errors')
    })
  }
}
