import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import { z } from 'zod'
import type { User } from '../../db/schema.ts'
import { ConflictError, ForbiddenError, ValidationError } from '../../lib/errors.ts'
import { ROLES } from '../../lib/roles.ts'
import { flash, isHtmx, redirect } from '../../plugins/session.ts'
import { findAccounts } from '../accounts/search-plans.ts'
import * as repo from './repository.ts'
import * as service from './service.ts'

const PAGE_SIZE = 50
const listQuery = z.object({
  q: z.string().max(200).catch('').default(''),
  sort: z.enum(repo.USER_SORTABLE).catch('username').default('username'),
  dir: z.enum(['asc', 'desc']).catch('asc').default('asc'),
  page: z.coerce.number().int().min(1).max(100_000).catch(1).default(1),
})

type Body = Record<string, unknown>
const str = (body: unknown, key: string) => {
  const v = (body as Body | undefined)?.[key]
  return typeof v === 'string' ? v : ''
}
const list = (body: unknown, key: string): string[] => {
  const v = (body as Body | undefined)?.[key]
  const values = Array.isArray(v) ? v : v === undefined ? [] : [v]
  return values.filter((x): x is string => typeof x === 'string' && z.uuid().safeParse(x).success)
}

function formInput(body: unknown): service.UserInput {
  return {
    name: str(body, 'name'),
    username: str(body, 'username'),
    email: str(body, 'email'),
    password: str(body, 'password'),
    confirm: str(body, 'confirm'),
    role: str(body, 'role'),
    accounts: list(body, 'account'),
  }
}

// The Users pages (Administrator): the users table, Create User, Edit User with the
// Accounts tab and API Keys, Disable/Enable, Unlock, Reset 2FA, Delete with transfer, Assist.
const routes: FastifyPluginAsync = async (app) => {
  const admin = { config: { access: 'administrator' as const } }

  app.get('/users', admin, async (request, reply) => {
    const q = listQuery.parse(request.query ?? {})
    const total = await repo.countUsersMatching(app.db, q.q)
    const pages = Math.max(1, Math.ceil(total / PAGE_SIZE))
    const page = Math.min(q.page, pages)
    const users = await repo.listUsers(app.db, { text: q.q, sort: q.sort, dir: q.dir, limit: PAGE_SIZE, offset: (page - 1) * PAGE_SIZE })
    const me = request.auth!.assistedBy ?? request.auth!.user
    return reply.render('users/index', { title: 'Users', users, total, page, pages, q, meId: me.id, now: Date.now() }, { fragment: 'users/_results' })
  })

  /** The Create/Edit User form with its Accounts tab (assigned accounts and the Assign Accounts search). */
  async function renderForm(request: FastifyRequest, reply: FastifyReply, opts: { user: User | null; input?: service.UserInput; errors?: Record<string, string>; alert?: string; status?: number; assignQuery?: string }) {
    const input = opts.input ?? {
      name: opts.user?.name ?? '', username: opts.user?.username ?? '', email: opts.user?.email ?? '', password: '', confirm: '',
      role: String(opts.user?.role ?? 16),
      accounts: opts.user ? (await repo.assignedAccounts(app.db, opts.user.id)).map((a) => a.uuid) : [],
    }
    const assigned = await repo.accountsByUuids(app.db, input.accounts)
    const assignQuery = opts.assignQuery ?? ''
    const found = await findAccounts(app.db, app.dialect, request.auth!.user, { text: assignQuery, limit: 25, offset: 0 })
    const assignedSet = new Set(input.accounts)
    return reply.render('users/form', {
      title: opts.user ? 'Edit User' : 'Create User',
      editing: opts.user,
      input,
      assigned,
      candidates: found.filter((a) => !assignedSet.has(a.uuid)),
      assignQuery,
      errors: opts.errors,
      alert: opts.alert,
      domains: await repo.approvedDomains(app.db),
      roleChoices: ROLES,
      // One's own password (My Account) and, while assisting, the user's: no password fields.
      passwordRefusal: opts.user ? service.credentialsRefusal(request, opts.user, 'password') : null,
      keysRefusal: opts.user ? service.credentialsRefusal(request, opts.user, 'api-keys') : null,
    }, { status: opts.status })
  }

  // The Assign Accounts panel's search (htmx): check boxes for accounts not yet assigned.
  app.get('/users/assign-search', admin, async (request, reply) => {
    const q = z.object({ assign_q: z.string().max(200).catch(''), account: z.any().optional() }).parse(request.query ?? {})
    // Boxes checked before this search stay, checked, at the top of the new list.
    const checkedUuids = list(request.query, 'account')
    const chosen = new Set(checkedUuids)
    const checked = await repo.accountsByUuids(app.db, checkedUuids)
    const found = await findAccounts(app.db, app.dialect, request.auth!.user, { text: q.assign_q, limit: 25, offset: 0 })
    return reply.render('users/_candidates', { checked, candidates: found.filter((a) => !chosen.has(a.uuid)), assignQuery: q.assign_q })
  })

  app.get('/users/new', admin, async (request, reply) => renderForm(request, reply, { user: null }))

  app.post('/users/new', admin, async (request, reply) => {
    const input = formInput(request.body)
    // Without JavaScript the Assign Accounts search submits the whole form: re-render it.
    if (str(request.body, '_action') === 'search') return renderForm(request, reply, { user: null, input, assignQuery: str(request.body, 'assign_q') })
    try {
      await service.createUser(request, input)
    } catch (err) {
      if (err instanceof ValidationError) return renderForm(request, reply, { user: null, input, errors: err.fieldErrors, alert: err.message, status: 422 })
      throw err
    }
    await flash(request, `User ${input.username.trim().toLowerCase()} created.`)
    return redirect(request, reply, '/users')
  })

  app.get('/users/:id/edit', admin, async (request, reply) => {
    const user = await service.requireUser(request, (request.params as { id: string }).id)
    return renderForm(request, reply, { user })
  })

  app.post('/users/:id/edit', admin, async (request, reply) => {
    const user = await service.requireUser(request, (request.params as { id: string }).id)
    const input = formInput(request.body)
    if (str(request.body, '_action') === 'search') return renderForm(request, reply, { user, input, assignQuery: str(request.body, 'assign_q') })
    try {
      await service.editUser(request, user, input)
    } catch (err) {
      if (err instanceof ValidationError) return renderForm(request, reply, { user, input, errors: err.fieldErrors, alert: err.message, status: 422 })
      // The role field is what would take the portal's last Administrator away.
      if (err instanceof service.LastAdministratorError) return renderForm(request, reply, { user, input, errors: { role: err.message }, alert: err.message, status: 422 })
      throw err
    }
    await flash(request, `User ${user.username} saved.`)
    return redirect(request, reply, '/users')
  })

  // Confirm windows (Disable User, Enable User, Reset 2FA): a plane with htmx, a page without.
  type Action = 'disable' | 'enable' | 'reset-2fa'
  const WINDOWS: Record<Action, { title: string; button: string; done: string }> = {
    disable: { title: 'Disable User', button: 'Disable', done: 'User disabled successfully.' },
    enable: { title: 'Enable User', button: 'Enable', done: 'User enabled successfully.' },
    'reset-2fa': { title: 'Reset Two-Factor Authentication', button: 'Reset', done: 'Two-factor authentication was reset.' },
  }
  for (const action of Object.keys(WINDOWS) as Action[]) {
    const w = WINDOWS[action]
    app.get(`/users/:id/${action}`, admin, async (request, reply) => {
      const user = await service.requireUser(request, (request.params as { id: string }).id)
      return reply.render('users/confirm', { title: w.title, window: w, action, target: user, step: 'confirm' }, { fragment: 'users/_confirm' })
    })
    app.post(`/users/:id/${action}`, admin, async (request, reply) => {
      const user = await service.requireUser(request, (request.params as { id: string }).id)
      try {
        if (action === 'reset-2fa') await service.resetTwoFactor(request, user)
        else await service.setEnabled(request, user, action === 'enable')
      } catch (err) {
        if (err instanceof ConflictError || err instanceof ForbiddenError) return reply.render('users/confirm', { title: w.title, window: w, action, target: user, step: 'confirm', alert: err.message }, { fragment: 'users/_confirm', status: err.statusCode })
        throw err
      }
      // The window shows the message; a page load (no JavaScript) shows it as a flash.
      if (isHtmx(request)) reply.header('HX-Trigger', 'users-changed')
      else await flash(request, w.done)
      return reply.render('users/confirm', { title: w.title, window: w, action, target: user, step: 'done' }, { fragment: 'users/_confirm' })
    })
  }

  app.post('/users/:id/unlock', admin, async (request, reply) => {
    const user = await service.requireUser(request, (request.params as { id: string }).id)
    await service.unlock(request, user)
    await flash(request, `${user.username} is unlocked.`)
    return redirect(request, reply, '/users')
  })

  // Delete User: only a disabled user; the page, then the confirmation, then Delete.
  async function renderDelete(request: FastifyRequest, reply: FastifyReply, user: User, extra: Record<string, unknown> = {}, status?: number) {
    return reply.render('users/delete', { title: 'Delete User', target: user, candidates: await repo.successorCandidates(app.db, user.id), ...extra }, { status })
  }

  app.get('/users/:id/delete', admin, async (request, reply) => {
    const user = await service.requireUser(request, (request.params as { id: string }).id)
    if (user.enabled === 1) return renderDelete(request, reply, user, { alert: 'Disable the user before deleting them.' }, 409)
    return renderDelete(request, reply, user)
  })

  app.post('/users/:id/delete', admin, async (request, reply) => {
    const user = await service.requireUser(request, (request.params as { id: string }).id)
    const successor = str(request.body, 'successor')
    if (str(request.body, 'step') !== 'delete') {
      const chosen = successor ? await repo.findUserByUuid(app.db, successor) : undefined
      if (!chosen || chosen.id === user.id || chosen.enabled !== 1) return renderDelete(request, reply, user, { errors: { successor: 'Select the new owner of the user’s objects.' } }, 422)
      return renderDelete(request, reply, user, { confirm: chosen })
    }
    try {
      await service.deleteUser(request, user, successor)
    } catch (err) {
      if (err instanceof ValidationError) return renderDelete(request, reply, user, { errors: err.fieldErrors }, 422)
      if (err instanceof ConflictError) return renderDelete(request, reply, user, { alert: err.message }, 409)
      throw err
    }
    await flash(request, `User ${user.username} deleted; their objects now belong to the new owner.`)
    return redirect(request, reply, '/users')
  })

  // Generate API Keys for another user: the warning, then Replace & Generate.
  app.get('/users/:id/keys', admin, async (request, reply) => {
    const user = await service.requireUser(request, (request.params as { id: string }).id)
    return reply.render('users/keys', { title: 'Generate API Keys', target: user, refusal: service.credentialsRefusal(request, user, 'api-keys') }, { fragment: 'users/_keys' })
  })

  app.post('/users/:id/keys', admin, async (request, reply) => {
    const user = await service.requireUser(request, (request.params as { id: string }).id)
    try {
      const keys = await service.generateKeysFor(request, user)
      return reply.render('users/keys', { title: 'API Keys', target: user, keys }, { fragment: 'users/_keys' })
    } catch (err) {
      if (err instanceof ForbiddenError) return reply.render('users/keys', { title: 'Generate API Keys', target: user, refusal: err.message }, { fragment: 'users/_keys', status: 403 })
      throw err
    }
  })

  // Assist: the Accounts page as the user sees it, under the blue overlay.
  app.post('/users/:id/assist', admin, async (request, reply) => {
    const user = await service.requireUser(request, (request.params as { id: string }).id)
    try {
      await service.startAssist(request, user)
    } catch (err) {
      if (err instanceof ConflictError) {
        await flash(request, err.message)
        return redirect(request, reply, '/users')
      }
      throw err
    }
    return redirect(request, reply, '/accounts')
  })

  app.post('/assist/stop', { config: { access: 'user' } }, async (request, reply) => {
    const assisted = await service.stopAssist(request)
    if (assisted) await flash(request, `You stopped assisting ${assisted.username}.`)
    return redirect(request, reply, assisted ? '/users' : '/accounts')
  })
}

export default routes
