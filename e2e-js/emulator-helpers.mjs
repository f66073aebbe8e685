// Helpers for the SignalR emulator tests: start the built binary, mint tokens, call its REST API,
// and serve a local app `negotiate` endpoint that redirects clients to the emulator.

import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { createServer } from 'node:http';
import { once } from 'node:events';
import { resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** The path of a workspace binary built by `cargo build` (debug profile). */
export function binaryPath(name) {
  const targetDir = process.env.CARGO_TARGET_DIR
    ? resolve(repoRoot, process.env.CARGO_TARGET_DIR)
    : resolve(repoRoot, 'target');
  return resolve(targetDir, 'debug', name);
}

/**
 * Starts `signalr-emulator --port 0` and waits for the connection string it prints on stdout.
 * Resolves to { port, accessKey, connectionString, process, stop() }.
 */
export async function startEmulator(extraArgs = []) {
  const child = spawn(binaryPath('signalr-emulator'), ['--port', '0', ...extraArgs], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn' },
  });
  let stderr = '';
  child.stderr.on('data', (chunk) => { stderr += chunk; });
  const exited = new Promise((resolveExit) => {
    child.on('exit', (code, signal) => resolveExit([code, signal]));
  });
  const lines = createInterface({ input: child.stdout });
  const printed = new Promise((resolvePrinted, reject) => {
    lines.on('line', (line) => {
      const match = /^Endpoint=(http:\/\/[^;]+);Port=(\d+);AccessKey=([^;]+);Version=1\.0;$/.exec(line);
      if (match) resolvePrinted({ connectionString: line, port: Number(match[2]), accessKey: match[3] });
    });
    child.on('error', (error) => reject(new Error(
      `cannot start ${binaryPath('signalr-emulator')} (${error.code}); build it first with cargo build --workspace --bins`,
    )));
    exited.then(([code]) => reject(new Error(`the emulator exited (${code}) before printing: ${stderr}`)));
  });
  const info = await printed;
  return {
    ...info,
    process: child,
    /** Sends SIGTERM and resolves to the exit code. */
    async stop() {
      if (child.exitCode === null && child.pid !== undefined) child.kill('SIGTERM');
      const [code] = await exited;
      return code;
    },
  };
}

function base64url(input) {
  return Buffer.from(input).toString('base64url');
}

/** Signs `claims` with HS256 over the UTF-8 bytes of `accessKey`, as the service's SDKs do. */
export function mintToken(claims, accessKey) {
  const header = base64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const payload = base64url(JSON.stringify(claims));
  const signature = createHmac('sha256', Buffer.from(accessKey, 'utf8'))
    .update(`${header}.${payload}`)
    .digest('base64url');
  return `${header}.${payload}.${signature}`;
}

/** Seconds since the epoch. */
export function nowSeconds() {
  return Math.floor(Date.now() / 1000);
}

/** Calls the emulator's REST API with a token whose audience is the request URL without query. */
export async function rest(emulator, method, pathAndQuery, body) {
  const path = pathAndQuery.split('?')[0];
  const token = mintToken({ aud: `http://localhost${path}`, exp: nowSeconds() + 3600 }, emulator.accessKey);
  const response = await fetch(`http://127.0.0.1:${emulator.port}${pathAndQuery}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return response.status;
}

/**
 * Serves `POST /api/negotiate?user=…` as an app server would: `redirectFor(user)` returns the
 * `{ url, accessToken }` redirect. Resolves to { baseUrl(user), close() }.
 */
export async function startNegotiateServer(redirectFor) {
  const server = createServer((request, response) => {
    const url = new URL(request.url, 'http://localhost');
    if (request.method !== 'POST' || url.pathname !== '/api/negotiate') {
      response.writeHead(404).end();
      return;
    }
    const body = JSON.stringify(redirectFor(url.searchParams.get('user')));
    response.writeHead(200, { 'content-type': 'application/json' }).end(body);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  return {
    baseUrl: (user) => `http://127.0.0.1:${port}/api?user=${encodeURIComponent(user)}`,
    close: () => new Promise((done) => server.close(done)),
  };
}

/**
 * Records every invocation of `targets` on a hub connection, in order, so a test can await the next
 * one without sleeping.
 */
export class Inbox {
  constructor(connection, targets) {
    this.queue = [];
    this.waiters = [];
    for (const target of targets) {
      connection.on(target, (...args) => this.push({ target, args }));
    }
  }

  push(message) {
    const waiter = this.waiters.shift();
    if (waiter) waiter(message);
    else this.queue.push(message);
  }

  /** The next message received (already received, or the next to arrive). */
  next() {
    const message = this.queue.shift();
    if (message) return Promise.resolve(message);
    return new Promise((resolveNext) => this.waiters.push(resolveNext));
  }
}
