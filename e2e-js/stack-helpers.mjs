// Helpers for the whole-stack tests: the SignalR emulator, the dev identity provider and the host
// emulator (running the real handler) as real processes on free ports, plus small clients.

import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, existsSync, rmSync, symlinkSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { createServer } from 'node:net';
import { HubConnectionBuilder, HttpTransportType, LogLevel } from '@microsoft/signalr';
import { binaryPath, startEmulator } from './emulator-helpers.mjs';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const AUDIENCE = 'api://signalr-chat-e2e';
export const TARGET = 'newMessage';

/**
 * Starts a binary and resolves once a line of its output matches `ready` (stdout or stderr).
 * Resolves to { match, output(), stop() }; stop() sends SIGTERM and waits for the exit.
 */
export async function startProcess(name, args, ready, options = {}) {
  const child = spawn(binaryPath(name), args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'info', ...(options.env ?? {}) },
  });
  const lines = [];
  const exited = new Promise((resolveExit) => child.on('exit', (code, signal) => resolveExit([code, signal])));
  const match = await new Promise((resolveMatch, reject) => {
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream }).on('line', (line) => {
        lines.push(line);
        if (process.env.E2E_LOG) console.error(`[${name}] ${line}`);
        const found = ready.exec(line);
        if (found) resolveMatch(found);
      });
    }
    child.on('error', (error) => reject(new Error(
      `cannot start ${binaryPath(name)} (${error.code}); build it first with cargo build --workspace --bins`,
    )));
    exited.then(([code, signal]) => reject(new Error(
      `${name} exited (${code ?? signal}) before it was ready:\n${lines.join('\n')}`,
    )));
  });
  return {
    match,
    output: () => lines.join('\n'),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

/**
 * A function app root in a temporary folder: this repository's host.json, function folders,
 * policy.json and www/, the built handler, and local settings pointing at the given services.
 */
function makeAppRoot({ connectionString, issuer, serviceUri, settings = {} }) {
  const root = mkdtempSync(join(tmpdir(), 'e2e-app-'));
  cpSync(join(repoRoot, 'host.json'), join(root, 'host.json'));
  cpSync(join(repoRoot, 'policy.json'), join(root, 'policy.json'));
  for (const entry of readdirSync(repoRoot, { withFileTypes: true })) {
    if (entry.isDirectory() && existsSync(join(repoRoot, entry.name, 'function.json'))) {
      cpSync(join(repoRoot, entry.name), join(root, entry.name), { recursive: true });
    }
  }
  if (serviceUri) {
    // Keyless: the handler mints tokens itself, so negotiate has no signalRConnectionInfo input.
    const negotiate = JSON.parse(readFileSync(join(repoRoot, 'negotiate/function.json'), 'utf8'));
    negotiate.bindings = negotiate.bindings.filter((binding) => binding.type !== 'signalRConnectionInfo');
    writeFileSync(join(root, 'negotiate/function.json'), JSON.stringify(negotiate, null, 2));
  }
  symlinkSync(join(repoRoot, 'www'), join(root, 'www'));
  symlinkSync(binaryPath('handler'), join(root, 'handler'));
  writeFileSync(join(root, 'local.settings.json'), JSON.stringify({
    IsEncrypted: false,
    Values: {
      FUNCTIONS_WORKER_RUNTIME: 'custom',
      ...(serviceUri
        ? { AzureSignalRConnectionString__serviceUri: serviceUri, SIGNALR_HUB_NAME: 'chat' }
        : { AzureSignalRConnectionString: connectionString }),
      AUTH_ISSUER: issuer,
      AUTH_AUDIENCE: AUDIENCE,
      // The demo page is off unless asked for; the stack tests drive it.
      DEMO_PAGE_ENABLED: 'true',
      ...settings,
    },
    Host: { CORS: '*' },
  }, null, 2));
  return root;
}

/**
 * A port nothing listens on now, for the host emulator: the SignalR emulator's upstream URL must
 * name it before the host can start (the host needs the emulator's connection string first).
 */
async function freePort() {
  const server = createServer();
  await new Promise((resolveListen) => server.listen(0, '127.0.0.1', resolveListen));
  const { port } = server.address();
  await new Promise((resolveClose) => server.close(resolveClose));
  return port;
}

/**
 * Starts emulator, dev-idp and host emulator; registers their shutdown on `t`. The emulator's
 * upstream is the app's `upstream` function (the host emulator ignores function keys, so the URL
 * has no `code`). `settings` are added to the app's local settings.
 */
export async function startStack(t, settings = {}) {
  const hostPort = await freePort();
  const upstream = ['--upstream', `http://127.0.0.1:${hostPort}/api/upstream`];
  let emulator = await startEmulator(upstream);
  t.after(() => emulator.stop());
  const idp = await startProcess('dev-idp', ['--port', '0', '--audience', AUDIENCE],
    /dev-idp listening on (http:\/\/localhost:\d+) \(issuer (\S+)\)/);
  t.after(() => idp.stop());
  const idpUrl = idp.match[1];
  const root = makeAppRoot({ connectionString: emulator.connectionString, issuer: idp.match[2], settings });
  t.after(() => rmSync(root, { recursive: true, force: true }));
  // The settings above are the whole configuration: nothing inherited may change them.
  const env = Object.fromEntries(Object.keys(process.env)
    .filter((name) => name.startsWith('AUTH_') || name.startsWith('Azure') || name.startsWith('WEBPUBSUB_'))
    .map((name) => [name, '']));
  const host = await startProcess('host-emulator', [root, '--port', String(hostPort)],
    /host-emulator listening on http:\/\/localhost:(\d+)/, { env });
  t.after(() => host.stop());
  const appUrl = `http://127.0.0.1:${host.match[1]}`;
  const stack = {
    emulator, idp, idpUrl, host, appUrl, root,
    /**
     * Stops the SignalR emulator and starts a new one on the same port with the same upstream (and
     * the same well-known development key), as when a service restarts: clients lose their
     * connections, and the app's settings stay right.
     */
    async restartEmulator() {
      const { port } = emulator;
      await emulator.stop();
      emulator = await startEmulator([...upstream, '--port', String(port)]);
      stack.emulator = emulator;
      return emulator;
    },
  };
  return stack;
}

/** The resource the keyless emulator requests its upstream token for (`auth: ManagedIdentity`). */
export const UPSTREAM_RESOURCE = 'api://signalr-upstream-e2e';
/** dev-idp's managed identity (its default client id): the service identity the handler expects. */
export const MI_CLIENT_ID = '22222222-2222-4222-8222-222222222222';

/**
 * The stack with no access key anywhere: dev-idp also serves the managed-identity endpoint, the
 * emulator trusts its stand-in Entra issuer with local auth disabled, and the host emulator (and
 * through it the handler) gets IDENTITY_ENDPOINT/IDENTITY_HEADER as on Azure. The emulator's
 * upstream is the app's `upstream` function with `auth: ManagedIdentity`: it sends its
 * managed-identity token for UPSTREAM_RESOURCE, which the handler checks
 * (SIGNALR_UPSTREAM_AUTH=managedIdentity). dev-idp has one identity, so here the service and the
 * app share it.
 */
export async function startKeylessStack(t) {
  const hostPort = await freePort();
  const idp = await startProcess('dev-idp', ['--port', '0', '--audience', AUDIENCE],
    /managed identity: issuer (\S+) /);
  t.after(() => idp.stop());
  const printed = (name) => new RegExp(`^${name}=(\\S+)$`, 'm').exec(idp.output())[1];
  const listening = /dev-idp listening on (http:\/\/localhost:\d+) \(issuer (\S+)\)/.exec(idp.output());
  const identityEndpoint = printed('IDENTITY_ENDPOINT');
  const identityHeader = printed('IDENTITY_HEADER');
  const emulator = await startProcess('signalr-emulator',
    ['--port', '0', '--entra-issuer', idp.match[1], '--disable-local-auth',
      '--upstream', `http://127.0.0.1:${hostPort}/api/upstream`,
      '--upstream-identity-endpoint', identityEndpoint,
      '--upstream-identity-header', identityHeader,
      '--upstream-token-resource', UPSTREAM_RESOURCE],
    /^Endpoint=(http:\/\/localhost:\d+);AuthType=azure\.msi;Version=1\.0;$/);
  t.after(() => emulator.stop());
  const root = makeAppRoot({
    serviceUri: emulator.match[1],
    issuer: listening[2],
    settings: {
      SIGNALR_UPSTREAM_AUTH: 'managedIdentity',
      SIGNALR_UPSTREAM_ISSUER: idp.match[1],
      SIGNALR_UPSTREAM_AUDIENCE: UPSTREAM_RESOURCE,
      SIGNALR_UPSTREAM_IDENTITY: MI_CLIENT_ID,
    },
  });
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const env = Object.fromEntries(Object.keys(process.env)
    .filter((name) => name.startsWith('AUTH_') || name.startsWith('Azure') || name.startsWith('WEBPUBSUB_'))
    .map((name) => [name, '']));
  env.IDENTITY_ENDPOINT = identityEndpoint;
  env.IDENTITY_HEADER = identityHeader;
  const host = await startProcess('host-emulator', [root, '--port', String(hostPort)],
    /host-emulator listening on http:\/\/localhost:(\d+)/, { env });
  t.after(() => host.stop());
  const appUrl = `http://127.0.0.1:${host.match[1]}`;
  return { emulator, idp, idpUrl: listening[1], host, appUrl, root };
}

/** A token from the dev issuer. */
export async function getToken(stack, sub, extra = {}) {
  const response = await fetch(`${stack.idpUrl.replace('localhost', '127.0.0.1')}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ sub, ...extra }),
  });
  if (!response.ok) throw new Error(`dev-idp refused a token for ${sub}: ${response.status}`);
  return (await response.json()).access_token;
}

/** POSTs a function with the caller's token; resolves to { status, body }. */
export async function callFunction(stack, name, token, body, headers = {}) {
  const response = await fetch(`${stack.appUrl}/api/${name}`, {
    method: 'POST',
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      ...headers,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let json = null;
  try { json = JSON.parse(text); } catch { json = null; }
  return { status: response.status, body: json, text };
}

/** A hub connection through the app's negotiate (base URL `${appUrl}/api`), not yet started. */
export function connection(stack, token, headers = {}) {
  return new HubConnectionBuilder()
    .withUrl(`${stack.appUrl}/api`, {
      accessTokenFactory: () => token,
      transport: HttpTransportType.WebSockets,
      headers,
    })
    .configureLogging(LogLevel.None)
    .build();
}

/** Decodes a JWT payload (no verification; for assertions). */
export function jwtPayload(token) {
  return JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString('utf8'));
}

/** The checked-in browser bundle and the one the lockfile installs. */
export function bundles() {
  return {
    committed: readFileSync(join(repoRoot, 'www/lib/signalr.min.js')),
    installed: readFileSync(join(repoRoot, 'e2e-js/node_modules/@microsoft/signalr/dist/browser/signalr.min.js')),
  };
}
