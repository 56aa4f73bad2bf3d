// The Users procedures of the guide in a real browser, by their labels, with and without
// JavaScript, as an Administrator: Create User (Role Permissions guide, Assign Accounts),
// Edit User (remove an assigned account), Generate API Keys for another user, Assist and
// Stop Assisting, Disable, Enable, and Delete with Transfer User Objects.
import crypto from 'node:crypto'
import t from 'tap'
import { searchTextOf } from '../../src/areas/accounts/repository.ts'
import { ADMIN_USERNAME } from '../support/fixtures.ts'
import { startPortal, type PortalProcess as Portal } from '../support/portal-process.ts'
import { MODES, appears, browserAvailable, launchBrowser, newSession, signIn } from './chromium.ts'

t.setTimeout(120_000)

const NEW_PASSWORD = 'Blue-Kettle-77'

function seed(portal: Portal, prefix: string): void {
  portal.withDb((db) => {
    const now = Date.now()
    const insert = db.prepare(`insert into accounts (uuid, container_name, site_id, region, licensed_apps, licensed_assets, licensed_assets_limit,
      license_utilization, license_expiration_date, notes, domains, search_text, created_at, modified_at) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '[]', ?, ?, ?)`)
    for (const [name, site] of [[`${prefix} Acme Logistics`, `${prefix}-EU-1`], [`${prefix} Bluefin Capital`, `${prefix}-EU-2`]]) {
      insert.run(crypto.randomUUID(), name, site, 'EU', 'vm', 40, 50, 80, now + 90 * 86_400_000, '', searchTextOf({ container_name: name, custom_name: null, site_id: site, licensed_apps: 'vm', notes: '' }), now, now)
    }
  })
}

if (browserAvailable(t)) {
  const portal = await startPortal(t)
  const browser = await launchBrowser(t)

  for (const [i, mode] of MODES.entries()) {
    const prefix = i === 0 ? 'Js' : 'Plain'
    const username = `jana.${prefix.toLowerCase()}@example.com`
    const acme = `${prefix} Acme Logistics`
    const bluefin = `${prefix} Bluefin Capital`

    t.test(`${mode.name}: create, edit, API keys, assist, disable, enable and delete a user`, async (t) => {
      seed(portal, prefix)
      const { page, problems } = await newSession(t, browser, portal, mode)
      await signIn(page, ADMIN_USERNAME)
      const row = () => page.getByRole('row').filter({ has: page.getByRole('link', { name: `Edit ${username}`, exact: true }) })
      /** Waits until the Users page (its table) shows after a navigation or an htmx refresh. */
      const usersPage = async () => {
        await page.waitForURL((u) => u.pathname === '/users')
        await page.getByRole('heading', { name: 'Users', exact: true }).waitFor()
      }

      // Create User: ⊕ Create User, the fields, Role, the Role Permissions guide, Assign Accounts
      await page.goto('/users')
      await page.getByRole('link', { name: '⊕ Create User' }).click()
      await page.getByRole('heading', { name: 'Create User', exact: true }).waitFor()
      await page.getByLabel('Full Name', { exact: true }).fill(`Jana ${prefix}`)
      await page.getByLabel('Username', { exact: true }).fill(username)
      await page.getByLabel('Email', { exact: true }).fill(`jana.${prefix.toLowerCase()}@example.net`)
      await page.getByLabel('Password', { exact: true }).fill(NEW_PASSWORD)
      await page.getByLabel('Verify Password', { exact: true }).fill(NEW_PASSWORD)
      await page.getByLabel('Role', { exact: true }).selectOption({ label: 'VM Standard' })
      t.notOk(await page.getByRole('region', { name: 'Role Permissions' }).isVisible(), 'the Role Permissions pane starts closed')
      await page.getByText('View guide to Role Permissions', { exact: true }).click()
      const guide = page.getByRole('region', { name: 'Role Permissions' })
      await guide.waitFor()
      t.ok(await guide.getByRole('rowheader', { name: 'VM Standard', exact: true }).isVisible(), 'the Role Permissions pane explains the roles')

      await page.getByText('⊕ Assign Accounts', { exact: true }).click()
      const group = page.getByRole('group', { name: 'Assign Accounts' })
      const candidate = (name: string) => group.getByRole('checkbox', { name: new RegExp(`^${name}`) })
      /** Searches the Assign Accounts panel: as you type with JavaScript, its Search button without. */
      const searchAccounts = async (text: string, hidden: string) => {
        const search = group.getByLabel('Search accounts', { exact: true })
        if (mode.javaScriptEnabled) {
          await search.fill('')
          await search.pressSequentially(text)
          // Done when no unchecked candidate is the other account (a checked one stays listed).
          await page.waitForFunction((other) => ![...document.querySelectorAll('#assign-candidates label')].some((l) => l.textContent?.includes(other) && !(l.querySelector('input') as HTMLInputElement | null)?.checked), hidden)
        } else {
          await search.fill(text)
          await group.getByRole('button', { name: 'Search', exact: true }).click()
          await page.waitForLoadState()
          t.equal(await page.getByLabel('Full Name', { exact: true }).inputValue(), `Jana ${prefix}`, 'the search round-trip keeps the typed fields')
          t.equal(await page.getByLabel('Role', { exact: true }).inputValue(), '32', 'and the role')
          // A password is not echoed back into the page: type it again.
          if (!(await page.getByLabel('Password', { exact: true }).inputValue())) {
            await page.getByLabel('Password', { exact: true }).fill(NEW_PASSWORD)
            await page.getByLabel('Verify Password', { exact: true }).fill(NEW_PASSWORD)
          }
        }
        // Narrowed: the other account is no longer offered (a checked one stays, checked).
        t.equal(await group.getByRole('checkbox', { name: new RegExp(`^${hidden}`), checked: false }).count(), 0, `the search for ${text} narrows the accounts`)
      }
      await searchAccounts(`${prefix} acme`, bluefin)
      await candidate(acme).check()
      // A second search, a second account: the first one checked must stay chosen.
      await searchAccounts(`${prefix} bluefin`, acme)
      await candidate(bluefin).check()
      const chosen = page.locator('input[name="account"]:checked')
      t.equal(await chosen.count(), 2, 'both checked accounts are still chosen after the second search')
      await page.getByRole('button', { name: 'Create', exact: true }).click()
      await usersPage()
      await page.getByText(`User ${username} created.`).waitFor()
      t.ok(await row().isVisible(), 'the Users page lists the new user')
      t.match(await row().textContent(), 'VM Standard', 'with the chosen role')

      // Edit User: click the username, change Full Name, remove the assigned account, Save
      await page.getByRole('link', { name: `Edit ${username}`, exact: true }).click()
      await page.getByRole('heading', { name: 'Edit User', exact: true }).waitFor()
      const assigned = page.getByRole('table', { name: 'Assigned accounts' })
      t.equal(await assigned.getByRole('checkbox', { name: acme, checked: true }).count(), 1, 'the first account assigned on Create is listed')
      const box = assigned.getByRole('checkbox', { name: bluefin })
      t.ok(await box.isChecked(), 'the account assigned on Create is listed')
      await page.getByLabel('Full Name', { exact: true }).fill(`Jana ${prefix} Novak`)
      const remove = assigned.getByRole('button', { name: `Remove ${bluefin}` })
      if (mode.javaScriptEnabled) {
        await remove.click()
      } else {
        t.notOk(await remove.isVisible(), 'no ✕ without JavaScript')
        await box.uncheck()
      }
      t.notOk(await box.isChecked(), 'the account is unchecked, removed on Save')
      await page.getByRole('button', { name: 'Save', exact: true }).click()
      await usersPage()
      await page.getByText(`User ${username} saved.`).waitFor()
      t.ok(await row().getByRole('cell', { name: `Jana ${prefix} Novak`, exact: true }).isVisible(), 'the new Full Name is listed')

      // Generate API Keys for another user: the warning, Replace & Generate, the keys
      await page.getByRole('link', { name: `Edit ${username}`, exact: true }).click()
      await page.getByRole('heading', { name: 'Edit User', exact: true }).waitFor()
      const after = page.getByRole('table', { name: 'Assigned accounts' })
      t.equal(await after.getByRole('checkbox', { name: bluefin }).count(), 0, 'the removed account is no longer assigned')
      t.equal(await after.getByRole('checkbox', { name: acme, checked: true }).count(), 1, 'the other account stays assigned')
      await page.getByRole('link', { name: 'Generate API Keys' }).click()
      const warn = page.getByRole('alertdialog', { name: 'Generate API Keys' })
      await warn.waitFor()
      t.match(await warn.textContent(), `Any existing API keys of ${username} are replaced`, 'the warning names the user')
      await warn.getByRole('button', { name: 'Replace & Generate' }).click()
      const keys = page.getByRole('alertdialog', { name: 'API Keys' })
      await keys.waitFor()
      const access = await keys.getByLabel('Access Key', { exact: true }).inputValue()
      const secret = await keys.getByLabel('Secret Key', { exact: true }).inputValue()
      t.ok(access.length >= 16 && secret.length >= 16 && access !== secret, 'the access and secret keys are shown')
      const copy = keys.getByRole('button', { name: 'Copy the access key' })
      if (mode.javaScriptEnabled) await copy.waitFor({ timeout: 3_000 }).catch(() => {})
      t.equal(await copy.isVisible(), mode.javaScriptEnabled, 'Copy buttons only with JavaScript')
      await keys.getByRole('link', { name: 'Done' }).click()
      await page.getByRole('heading', { name: 'Edit User', exact: true }).waitFor()
      t.notOk(await page.getByRole('alertdialog', { name: 'API Keys' }).isVisible(), 'Done closes the keys')

      // Assist: the row action, the Accounts page under the blue overlay, Stop Assisting
      await page.goto('/users')
      await page.getByRole('button', { name: `Assist ${username}`, exact: true }).click()
      await page.waitForURL((u) => u.pathname === '/accounts')
      const overlay = page.getByRole('region', { name: 'Assisting' })
      await overlay.waitFor()
      t.match(await overlay.textContent(), `You are assisting Jana ${prefix} Novak (${username})`, 'the blue overlay names the assisted user')
      t.ok(await page.getByRole('heading', { name: 'Accounts', exact: true }).isVisible(), 'the Accounts page as the user sees it')
      await overlay.getByRole('button', { name: 'Stop Assisting' }).click()
      await usersPage()
      await page.getByText(`You stopped assisting ${username}.`).waitFor()
      t.notOk(await page.getByRole('region', { name: 'Assisting' }).isVisible(), 'the overlay is gone')

      // Disable: the row action, the Disable User window, Disable, Continue, the Disabled tag
      const confirmWindow = async (action: 'Disable' | 'Enable', done: string) => {
        await page.getByRole('link', { name: `${action} ${username}`, exact: true }).click()
        const win = page.getByRole('alertdialog', { name: `${action} User` })
        await win.waitFor()
        t.match(await win.textContent(), `${action} ${username}?`, `the ${action} User window names the user`)
        await win.getByRole('button', { name: action, exact: true }).click()
        await win.getByText(done).waitFor()
        await win.getByRole('link', { name: 'Continue' }).click()
        await usersPage()
        await win.waitFor({ state: 'detached' })
      }
      await confirmWindow('Disable', 'User disabled successfully.')
      t.ok(await appears(row().getByText('Disabled', { exact: true })), 'the Disabled tag shows')
      t.equal(await page.getByRole('button', { name: `Assist ${username}` }).count(), 0, 'no Assist for a disabled user')

      // Enable: ✓, Enable, Continue
      await confirmWindow('Enable', 'User enabled successfully.')
      await row().getByRole('link', { name: `Disable ${username}`, exact: true }).waitFor()
      t.equal(await row().getByText('Disabled', { exact: true }).count(), 0, 'the Disabled tag is gone')

      // Delete: disable first, the Delete User page, Transfer User Objects, the confirmation
      await confirmWindow('Disable', 'User disabled successfully.')
      await row().getByRole('link', { name: `Delete ${username}`, exact: true }).click()
      await page.getByRole('heading', { name: 'Delete User', exact: true }).waitFor()
      t.equal(await page.getByText('User disabled successfully.').count(), 0, 'no stale message from the Disable User window')
      const objects = page.getByRole('table', { name: "What happens to the user's objects" })
      t.ok(await objects.getByRole('row', { name: /Scan Schedules\s+No\s+Migrated to the new object owner/ }).isVisible(), 'the table of what happens to the objects')
      t.ok(await page.getByRole('heading', { name: 'Transfer User Objects' }).isVisible(), 'Transfer User Objects')
      const owner = page.getByLabel('Select New Object Owner', { exact: true })
      const adminValue = await owner.locator('option', { hasText: ADMIN_USERNAME }).getAttribute('value')
      await owner.selectOption(adminValue!)
      await page.getByRole('button', { name: '🗑 Delete' }).click()
      const confirm = page.getByRole('alertdialog', { name: `Delete ${username}?` })
      await confirm.waitFor()
      t.match(await confirm.textContent(), `Their objects move to ${ADMIN_USERNAME}`, 'the confirmation names the new owner')
      await confirm.getByRole('button', { name: 'Delete', exact: true }).click()
      await usersPage()
      await page.getByText(`User ${username} deleted`).waitFor()
      t.equal(await page.getByRole('link', { name: `Edit ${username}`, exact: true }).count(), 0, 'the user is gone from the table')

      t.same(problems, [], 'no page errors, console errors or server errors')
    })
  }
}
