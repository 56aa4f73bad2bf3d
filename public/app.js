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
