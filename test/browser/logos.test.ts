// Add Logo, Edit Logo and Delete a Logo in a real browser, by the user guide's labels,
// with JavaScript (htmx planes) and without it (plain pages and form posts).
import t from 'tap'
import type { Page } from 'playwright-core'
import { PNG } from 'pngjs'
import { ADMIN_USERNAME } from '../support/fixtures.ts'
import { startPortal } from '../support/portal-process.ts'
import { MODES, appears, browserAvailable, launchBrowser, newSession, signIn } from './chromium.ts'

t.setTimeout(180_000)

function makePng(width: number, height: number, rgba: [number, number, number, number]): Buffer {
  const png = new PNG({ width, height })
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      // A bar with a transparent frame: a light logo needs the checkerboard to be seen.
      const inside = x > 3 && y > 3 && x < width - 4 && y < height - 4
      png.data.set(inside ? rgba : [0, 0, 0, 0], (y * width + x) * 4)
    }
  }
  return PNG.sync.write(png)
}

const file = (name: string, buffer: Buffer) => ({ name, mimeType: 'image/png', buffer })

/** The Logos page through the left navigation plane, as the guide says. */
async function openLogos(page: Page) {
  await page.goto('/accounts')
  await page.getByLabel('Navigation', { exact: true }).click()
  await page.locator('nav.nav-plane').getByRole('link', { name: 'Logos', exact: true }).click()
  await page.waitForURL('**/logos')
}

/** Rolls over the row (the action buttons appear), then clicks its action. */
async function rowAction(page: Page, logoName: string, action: 'Edit' | 'Delete') {
  const row = page.getByRole('row', { name: new RegExp(logoName) })
  await row.hover()
  const button = row.getByRole('link', { name: `${action} logo ${logoName}`, exact: true })
  const opacity = await button.evaluate((el) => getComputedStyle(el).opacity)
  await button.click()
  return opacity
}

if (browserAvailable(t)) {
  const portal = await startPortal(t)
  const browser = await launchBrowser(t)

  for (const mode of MODES) {
    const js = mode.javaScriptEnabled
    const suffix = js ? 'JS' : 'No JS'

    t.test(`${mode.name}: Add a Logo, Edit a Logo, Delete a Logo`, async (t) => {
      const { page, problems } = await newSession(t, browser, portal, mode)
      await signIn(page, ADMIN_USERNAME)
      await openLogos(page)
      t.equal(await page.locator('h1').textContent(), 'Logos', 'the Logos page')
      t.ok(await page.getByText('No logos yet').isVisible(), 'the empty state')

      // Add a Logo: ⊕ Add Logo, Name, Add File, Save. A file too large first.
      await page.getByRole('link', { name: 'Add Logo' }).click()
      const plane = page.getByRole('dialog', { name: 'Add Logo' })
      await plane.waitFor()
      t.equal(new URL(page.url()).pathname, js ? '/logos' : '/logos/new', js ? 'a plane over the page' : 'a page of its own')
      await plane.getByLabel('Name', { exact: true }).fill(`Acme ${suffix}`)
      await plane.getByLabel('Add File', { exact: true }).setInputFiles(file('too-wide.png', makePng(247, 52, [200, 30, 40, 255])))
      await plane.getByRole('button', { name: 'Save' }).click()
      t.ok(await appears(page.getByText('The image is 247 x 52 pixels').first()), 'a file wider than 246 pixels is refused with the reason')
      const again = page.getByRole('dialog', { name: 'Add Logo' })
      t.equal(await again.getByLabel('Name', { exact: true }).inputValue(), `Acme ${suffix}`, 'the name is kept')
      await again.getByLabel('Add File', { exact: true }).setInputFiles(file('acme.png', makePng(246, 52, [200, 30, 40, 255])))
      await again.getByRole('button', { name: 'Save' }).click()
      t.ok(await appears(page.locator('#flash-region').getByText('Logo created successfully')), 'the flash says Logo created successfully')
      const row = page.getByRole('row', { name: new RegExp(`Acme ${suffix}`) })
      await row.waitFor()
      t.equal(new URL(page.url()).pathname, '/logos', 'back on the Logos page')
      t.equal(await page.getByRole('dialog').count(), 0, 'the plane is closed')
      const img = row.getByRole('img', { name: `Acme ${suffix}` })
      await t.resolves(img.evaluate((el: HTMLImageElement) => el.decode()), 'the logo image loads')
      t.equal(await img.evaluate((el: HTMLImageElement) => el.naturalWidth), 246, 'the image is the uploaded 246 pixels wide')
      t.match(await img.evaluate((el) => getComputedStyle(el).backgroundImage), /conic-gradient/, 'on the checkerboard')

      // Edit a Logo: roll over, ✎, rename, ✕ next to the file, Add File, Save.
      const deleteLink = row.getByRole('link', { name: `Delete logo Acme ${suffix}`, exact: true })
      await page.mouse.move(0, 0)
      await page.locator('h1').click()
      t.equal(await deleteLink.evaluate((el) => getComputedStyle(el).opacity), '0', 'the action buttons are hidden until needed')
      await deleteLink.focus()
      t.equal(await deleteLink.evaluate((el) => getComputedStyle(el).opacity), '1', 'they appear on keyboard focus')
      await deleteLink.blur()
      t.equal(await rowAction(page, `Acme ${suffix}`, 'Edit'), '1', 'and on roll-over')
      const edit = page.getByRole('dialog', { name: 'Edit Logo' })
      await edit.waitFor()
      t.ok(await edit.getByText('acme.png').isVisible(), 'the current file is shown')
      await edit.getByLabel('Name', { exact: true }).fill(`Acme Light ${suffix}`)
      await edit.getByRole('link', { name: 'Remove file acme.png' }).click()
      const fileInput = page.getByRole('dialog', { name: 'Edit Logo' }).getByLabel('Add File', { exact: true })
      await fileInput.waitFor({ state: 'attached' })
      await fileInput.setInputFiles(file('acme-light.png', makePng(120, 30, [255, 255, 255, 255])))
      if (!js) {
        // Without JavaScript the ✕ reloads the plane as a page: the name is typed again.
        await page.getByRole('dialog', { name: 'Edit Logo' }).getByLabel('Name', { exact: true }).fill(`Acme Light ${suffix}`)
      }
      await page.getByRole('dialog', { name: 'Edit Logo' }).getByRole('button', { name: 'Save' }).click()
      t.ok(await appears(page.locator('#flash-region').getByText('Logo changes saved successfully')), 'the flash says Logo changes saved successfully')
      const renamed = page.getByRole('row', { name: new RegExp(`Acme Light ${suffix}`) })
      await renamed.waitFor()
      const newImg = renamed.getByRole('img', { name: `Acme Light ${suffix}` })
      await t.resolves(newImg.evaluate((el: HTMLImageElement) => el.decode()), 'the replaced image loads')
      t.equal(await newImg.evaluate((el: HTMLImageElement) => el.naturalWidth), 120, 'the new file is shown')
      t.match(await renamed.textContent(), /acme-light\.png/, 'the row shows the new file name')

      // Delete a Logo: roll over, 🗑, the confirmation, Delete.
      await rowAction(page, `Acme Light ${suffix}`, 'Delete')
      const confirm = page.getByRole('dialog', { name: 'Delete Logo' })
      await confirm.waitFor()
      t.match(await confirm.textContent(), new RegExp(`Delete the logo Acme Light ${suffix}\\?`), 'the confirmation names the logo')
      t.match(await confirm.textContent(), /No account uses this logo/, 'and says how many accounts use it')
      await confirm.getByRole('button', { name: 'Delete', exact: true }).click()
      await page.locator('#flash-region').getByText('Logo deleted successfully').waitFor()
      await page.getByText('No logos yet').waitFor()
      t.equal(await page.getByRole('row', { name: new RegExp(`Acme Light ${suffix}`) }).count(), 0, 'the logo is gone')

      // htmx logs its deliberate 422 swap (the refused file) as an error; nothing else may appear.
      t.same(problems.filter((p) => !/htmx:responseError|Response Status Error Code 422/.test(p)), [], 'no page errors, console errors or server errors')
    })
  }

  // Screenshots for a person to look at (LOGOS_SCREENSHOT_DIR=...): the page with logos
  // (one white on transparent) and the Add Logo plane.
  const shots = process.env.LOGOS_SCREENSHOT_DIR
  if (shots) {
    t.test('screenshots of the Logos page and the Add Logo plane', async (t) => {
      const { page } = await newSession(t, browser, portal, MODES[0])
      await page.setViewportSize({ width: 1280, height: 640 })
      await signIn(page, ADMIN_USERNAME)
      await openLogos(page)
      for (const [name, rgba] of [['Globex', [23, 78, 166, 255]], ['Initech (white)', [255, 255, 255, 255]]] as const) {
        await page.getByRole('link', { name: 'Add Logo' }).click()
        const p = page.getByRole('dialog', { name: 'Add Logo' })
        await p.getByLabel('Name', { exact: true }).fill(name)
        await p.getByLabel('Add File', { exact: true }).setInputFiles(file(`${name}.png`, makePng(180, 40, [...rgba])))
        await p.getByRole('button', { name: 'Save' }).click()
        await page.getByRole('row', { name: new RegExp(name.replace(/[()]/g, '\\$&')) }).waitFor()
      }
      await page.mouse.move(600, 215)
      await page.screenshot({ path: `${shots}/logos-page.png`, fullPage: true })
      await page.getByRole('link', { name: 'Add Logo' }).click()
      await page.getByRole('dialog', { name: 'Add Logo' }).waitFor()
      const shot = await page.screenshot({ path: `${shots}/add-logo-plane.png` })
      t.ok(shot.length > 0, `the last screenshot is taken (all are in ${shots})`)
    })
  }
}
