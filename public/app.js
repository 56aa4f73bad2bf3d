// Small enhancements on top of pages that work without JavaScript.
document.addEventListener('click', (event) => {
  // Close other open menus when one opens, and every menu on an outside click.
  const summary = event.target.closest('summary')
  for (const menu of document.querySelectorAll('details.menu[open]')) {
    if (!summary || menu !== summary.parentElement) menu.removeAttribute('open')
  }
  const copy = event.target.closest('[data-copy-target]')
  if (copy) {
    const source = document.getElementById(copy.dataset.copyTarget)
    if (source && navigator.clipboard) {
      navigator.clipboard.writeText(source.value ?? source.textContent).then(() => {
        copy.setAttribute('data-copied', 'true')
        copy.textContent = 'Copied'
      })
    }
  }
})

document.addEventListener('keydown', (event) => {
  if (event.key !== 'Escape') return
  const open = document.querySelector('details.menu[open]')
  if (open) {
    open.removeAttribute('open')
    open.querySelector('summary')?.focus()
  }
})

// htmx sends the CSRF token of the page with every request it makes.
document.addEventListener('htmx:configRequest', (event) => {
  const token = document.querySelector('meta[name="csrf-token"]')?.content
  if (token) event.detail.headers['X-CSRF-Token'] = token
})

// Copy buttons only make sense with JavaScript: show them.
function enhance(root) {
  for (const b of root.querySelectorAll('[data-copy-target][hidden], [data-unassign][hidden]')) b.hidden = false
}
document.addEventListener('DOMContentLoaded', () => enhance(document))
document.addEventListener('htmx:afterSettle', (event) => {
  enhance(event.target)
  // A finished plane action shows its message in the flash region and closes the plane.
  const done = document.querySelector('#plane [data-plane-done]')
  if (done) {
    document.getElementById('flash-region').replaceChildren(done)
    document.getElementById('plane').replaceChildren()
  }
  const plane = document.querySelector('#plane .plane')
  if (plane && event.target.id === 'plane') plane.querySelector('input, textarea, select, button')?.focus()
})

document.addEventListener('click', (event) => {
  const close = event.target.closest('[data-close-plane]')
  if (close && close.closest('#plane')) {
    event.preventDefault()
    document.getElementById('plane').replaceChildren()
  }
})

document.addEventListener('keydown', (event) => {
  if (event.key === 'Escape' && document.querySelector('#plane .plane')) document.getElementById('plane').replaceChildren()
})

// "Select all on this page" for the row check boxes.
document.addEventListener('change', (event) => {
  const all = event.target.closest('[data-select-all]')
  if (!all) return
  for (const box of all.closest('form').querySelectorAll('input.select-row')) box.checked = all.checked
})

// The Selected bar's count as text (CSS counts it visually without JavaScript).
document.addEventListener('change', (event) => {
  const form = event.target.closest('#selection-form')
  const count = form?.querySelector('.selected-count')
  if (count) count.textContent = String(form.querySelectorAll('input.select-row:checked').length)
})

// The ✕ of an assigned account unchecks it: removed when the form is saved.
document.addEventListener('click', (event) => {
  const button = event.target.closest('[data-unassign]')
  if (!button) return
  const row = button.closest('tr')
  const box = row?.querySelector('input[name="account"]')
  if (box) {
    box.checked = false
    row.classList.add('unassigned')
  }
})
