import type { Kysely } from 'kysely'
import type { Database, OutboxMessage } from '../../db/schema.ts'
import { uuid } from '../../lib/tokens.ts'
import * as repo from './repository.ts'

export interface OutboundMessage {
  kind: 'email' | 'sms'
  to: string
  subject: string
  text: string
  /**
   * When the secret in the text (a reset link, a verification code) stops working: a message
   * kept in the outbox (no transport) has its text cleared then, by clearExpiredMessages.
   */
  expiresAt?: number
}

export interface Transport {
  deliver(message: OutboundMessage): Promise<void>
}

/** What a kept message's text becomes once its link or code has expired. */
export const EXPIRED_BODY = '(The link or code in this message has expired; its text was cleared.)'

/**
 * Clears the text of every kept message whose secret has expired, leaving a line that says
 * so: without SMTP or an SMS gateway the outbox is the delivery, and it must not keep reset
 * links and codes in plaintext after they stop working. Runs at start-up, before every
 * outbox write and before the outbox is read (no timer: nothing keeps a process alive).
 */
export async function clearExpiredMessages(db: Kysely<Database>, now = Date.now()): Promise<number> {
  return repo.clearExpiredBodies(db, now, EXPIRED_BODY)
}

/** What the Messenger logs (the app's logger is one). */
export interface MessageLog {
  info(obj: object, msg: string): void
  warn(obj: object, msg: string): void
}

/**
 * The one way out for mail and text messages. Every message is first written to the
 * outbox table (so nothing acknowledged is lost); when a transport for its kind is
 * configured it is then delivered and its content cleared from the table. Without one,
 * the table is the delivery: an operator reads it with `mssp-portal outbox`, until the
 * secret it carries expires (clearExpiredMessages).
 */
export class Messenger {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly log: MessageLog,
    private readonly transports: Partial<Record<OutboundMessage['kind'], Transport>>,
    /** Kinds an operator relays from the outbox by hand (SMS_VIA_OUTBOX, for demos and tests). */
    private readonly relayedByOperator: ReadonlySet<OutboundMessage['kind']> = new Set(['email']),
  ) {}

  /** Whether a message of this kind reaches anyone (mail always does: SMTP or the outbox). */
  hasTransport(kind: OutboundMessage['kind']): boolean {
    return Boolean(this.transports[kind]) || this.relayedByOperator.has(kind)
  }

  async send(message: OutboundMessage): Promise<string> {
    const id = uuid()
    const transport = this.transports[message.kind]
    // Best effort: a clearing that fails (two processes clearing the same rows) is done by the next write.
    await clearExpiredMessages(this.db).catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'could not clear expired outbox messages'))
    await repo.insertMessage(this.db, {
      id,
      created_at: Date.now(),
      kind: message.kind,
      recipient: message.to,
      subject: message.subject,
      body: message.text,
      status: transport ? 'sending' : 'stored',
      expires_at: message.expiresAt ?? null,
    })
    this.log.info({ kind: message.kind, recipient: message.to }, 'message queued')
    if (transport) await this.deliver(id, message, transport)
    return id
  }

  private async deliver(id: string, message: OutboundMessage, transport: Transport): Promise<void> {
    try {
      await transport.deliver(message)
      await repo.markSent(this.db, id)
    } catch (err) {
      this.log.warn({ kind: message.kind, recipient: message.to, err: (err as Error).message }, 'message delivery failed')
      await repo.markFailed(this.db, id, (err as Error).message.slice(0, 500))
    }
  }
}

/**
 * The latest messages, for `mssp-portal outbox`; expired secrets are cleared first. An
 * operator who may only read the database still never sees one: they are left out as read.
 */
export async function latestMessages(db: Kysely<Database>, limit = 20): Promise<OutboxMessage[]> {
  const now = Date.now()
  await clearExpiredMessages(db, now).catch(() => 0)
  const rows = await repo.latestMessageRows(db, limit)
  return rows.map((m) => (m.expires_at !== null && m.expires_at <= now ? { ...m, body: EXPIRED_BODY, expires_at: null } : m))
}
