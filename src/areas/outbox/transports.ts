import nodemailer from 'nodemailer'
import type { OutboundMessage, Transport } from './service.ts'

// How messages leave the outbox when an operator configures a way out (SMTP_URL, SMS_WEBHOOK_URL).

export class SmtpTransport implements Transport {
  private readonly transporter
  constructor(url: string, private readonly from: string) {
    this.transporter = nodemailer.createTransport(url)
  }
  async deliver(m: OutboundMessage): Promise<void> {
    await this.transporter.sendMail({ from: this.from, to: m.to, subject: m.subject, text: m.text })
  }
  close(): void {
    this.transporter.close()
  }
}

/** Posts `{ to, text }` as JSON to an SMS gateway's webhook. */
export class SmsWebhookTransport implements Transport {
  constructor(private readonly url: string) {}
  async deliver(m: OutboundMessage): Promise<void> {
    const res = await fetch(this.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ to: m.to, text: m.text }),
      signal: AbortSignal.timeout(10_000),
    })
    if (!res.ok) throw new Error(`SMS webhook answered ${res.status}`)
  }
}
