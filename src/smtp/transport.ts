import net from 'node:net';
import nodemailer, { type Transporter } from 'nodemailer';
import type SMTPPool from 'nodemailer/lib/smtp-pool/index.js';

export interface ServerSettings {
  host: string;
  port: number;
  security: 'none' | 'starttls' | 'tls';
}

export interface AccountCredentials {
  username: string | null;
  password: string | null;
}

const CONNECTION_TIMEOUT_MS = 15_000;
const GREETING_TIMEOUT_MS = 15_000;
const SOCKET_TIMEOUT_MS = 60_000;

/** One pooled SMTP transport for one account. */
export function createAccountTransport(
  server: ServerSettings,
  credentials: AccountCredentials,
  maxConnections: number,
): Transporter<SMTPPool.SentMessageInfo> {
  const options: SMTPPool.Options & { maxRequeues: number } = {
    pool: true,
    host: server.host,
    port: server.port,
    secure: server.security === 'tls',
    requireTLS: server.security === 'starttls',
    ignoreTLS: server.security === 'none',
    auth: credentials.username ? { user: credentials.username, pass: credentials.password ?? '' } : undefined,
    maxConnections,
    maxMessages: Infinity,
    // The pool would otherwise resend a message whose connection dropped mid-transaction, without
    // limit (nodemailer #1105): a silent double send. The engine decides what a drop means.
    maxRequeues: 0,
    connectionTimeout: CONNECTION_TIMEOUT_MS,
    greetingTimeout: GREETING_TIMEOUT_MS,
    socketTimeout: SOCKET_TIMEOUT_MS,
    // Nagle's algorithm plus delayed ACKs stall each message ~40 ms when the process does other
    // I/O between sends (SMTP-FACTS "Measured here"): hand nodemailer a socket with it off.
    getSocket: (opts, callback) => {
      const socket = net.connect({ host: opts.host ?? server.host, port: opts.port ?? server.port, noDelay: true });
      callback(null, { connection: socket });
    },
  };
  return nodemailer.createTransport(options);
}
