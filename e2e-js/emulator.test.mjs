// The real @microsoft/signalr client against the emulator binary: negotiate redirect, WebSocket,
// deliveries over REST to all, a user, a group and a connection, and refusal of an expired token.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HubConnectionBuilder, HttpTransportType, LogLevel } from '@microsoft/signalr';
import {
  Inbox, mintToken, nowSeconds, rest, startEmulator, startNegotiateServer,
} from './emulator-helpers.mjs';

const HUB = 'chat';
// A hang guard, not a timing assertion: a healthy run takes well under a second per test.
const HANG_GUARD_MS = 60_000;

/** Starts the emulator and an app negotiate endpoint that mints tokens per user (expired for "late"). */
async function startStack(t) {
  const emulator = await startEmulator();
  t.after(() => emulator.stop());
  const negotiate = await startNegotiateServer((user) => ({
    // The shape an app server builds from the printed connection string (Endpoint=http://localhost;Port=…).
    url: `http://localhost:${emulator.port}/client/?hub=${HUB}`,
    accessToken: mintToken({
      aud: `http://localhost/client/?hub=${HUB}`,
      exp: user === 'late' ? nowSeconds() - 3600 : nowSeconds() + 3600,
      'asrs.s.uid': user,
    }, emulator.accessKey),
  }));
  t.after(() => negotiate.close());
  return { emulator, negotiate };
}

function buildConnection(negotiate, user) {
  return new HubConnectionBuilder()
    .withUrl(negotiate.baseUrl(user), { transport: HttpTransportType.WebSockets })
    .configureLogging(LogLevel.None)
    .build();
}

test('a real client receives what REST sends to all, its user, its group and its connection', { timeout: HANG_GUARD_MS }, async (t) => {
  const { emulator, negotiate } = await startStack(t);

  // Alice joins "room" as a user before she connects: the membership must apply when she does.
  assert.equal(await rest(emulator, 'PUT', `/api/hubs/${HUB}/users/alice/groups/room?api-version=2022-06-01`), 200);

  const alice = buildConnection(negotiate, 'alice');
  const bob = buildConnection(negotiate, 'bob');
  const aliceInbox = new Inbox(alice, ['news', 'marker']);
  const bobInbox = new Inbox(bob, ['news', 'marker']);
  await alice.start();
  await bob.start();
  t.after(() => alice.stop());
  t.after(() => bob.stop());
  assert.ok(alice.connectionId, 'the client knows its connection id from negotiate v1');

  assert.equal(await rest(emulator, 'POST', `/api/v1/hubs/${HUB}`, { target: 'news', arguments: ['to all'] }), 202);
  assert.deepEqual(await aliceInbox.next(), { target: 'news', args: ['to all'] });
  assert.deepEqual(await bobInbox.next(), { target: 'news', args: ['to all'] });

  assert.equal(await rest(emulator, 'POST', `/api/hubs/${HUB}/users/alice/:send?api-version=2022-06-01`, { Target: 'news', Arguments: ['to alice'] }), 202);
  assert.deepEqual(await aliceInbox.next(), { target: 'news', args: ['to alice'] });

  assert.equal(await rest(emulator, 'POST', `/api/hubs/${HUB}/groups/room/:send?api-version=2022-06-01`, { target: 'news', arguments: ['to room', { n: 1 }] }), 202);
  assert.deepEqual(await aliceInbox.next(), { target: 'news', args: ['to room', { n: 1 }] });

  assert.equal(await rest(emulator, 'POST', `/api/v1/hubs/${HUB}/connections/${alice.connectionId}`, { target: 'news', arguments: ['to the connection'] }), 202);
  assert.deepEqual(await aliceInbox.next(), { target: 'news', args: ['to the connection'] });

  // Bob is in no group and is not alice: the next thing he gets must be this marker, not the user,
  // group or connection messages sent above (one connection's messages arrive in order).
  assert.equal(await rest(emulator, 'POST', `/api/v1/hubs/${HUB}/connections/${bob.connectionId}`, { target: 'marker', arguments: [] }), 202);
  assert.deepEqual(await bobInbox.next(), { target: 'marker', args: [] });
});

test('a connection added to a group over REST gets the group message and another client does not', { timeout: HANG_GUARD_MS }, async (t) => {
  const { emulator, negotiate } = await startStack(t);
  const carol = buildConnection(negotiate, 'carol');
  const dave = buildConnection(negotiate, 'dave');
  const carolInbox = new Inbox(carol, ['news', 'marker']);
  const daveInbox = new Inbox(dave, ['news', 'marker']);
  await carol.start();
  await dave.start();
  t.after(() => carol.stop());
  t.after(() => dave.stop());

  assert.equal(await rest(emulator, 'PUT', `/api/v1/hubs/${HUB}/groups/room-1/connections/${carol.connectionId}`), 200);
  assert.equal(await rest(emulator, 'POST', `/api/v1/hubs/${HUB}/groups/room-1`, { target: 'news', arguments: ['members only'] }), 202);
  assert.deepEqual(await carolInbox.next(), { target: 'news', args: ['members only'] });

  assert.equal(await rest(emulator, 'POST', `/api/v1/hubs/${HUB}/connections/${dave.connectionId}`, { target: 'marker', arguments: [] }), 202);
  assert.deepEqual(await daveInbox.next(), { target: 'marker', args: [] });
});

test('a client whose token has expired is refused at negotiate and never connects', { timeout: HANG_GUARD_MS }, async (t) => {
  const { emulator, negotiate } = await startStack(t);
  const late = buildConnection(negotiate, 'late');
  await assert.rejects(late.start(), (error) => {
    assert.match(String(error), /401/);
    return true;
  });
  assert.equal(await rest(emulator, 'HEAD', `/api/v1/hubs/${HUB}/users/late`), 404, 'the user has no connection');
});

test('SIGTERM closes clients with a reason and the emulator exits with status 0', { timeout: HANG_GUARD_MS }, async (t) => {
  const { emulator, negotiate } = await startStack(t);
  const erin = buildConnection(negotiate, 'erin');
  await erin.start();
  const closed = new Promise((resolveClosed) => erin.onclose(resolveClosed));
  assert.equal(await emulator.stop(), 0);
  const error = await closed;
  assert.match(String(error), /Server is shutting down/);
});
