// The Resource Center's default links: the portal's own documentation, served by the
// portal itself so that they work offline. (The settings issue makes them editable.)
export const resourceLinks = [
  { label: 'User guide: getting started', href: '/help/getting-started' },
  { label: 'User guide: accounts', href: '/help/accounts' },
  { label: 'User guide: users and roles', href: '/help/users' },
  { label: 'REST API reference', href: '/help/api' },
  { label: 'What is new in this release', href: '/help/release-notes' },
]
