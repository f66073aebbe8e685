// Hub methods over the WebSocket with the real @microsoft/signalr client: the SignalR emulator
// forwards each invocation to the app's `upstream` function (signed with its AccessKey), the
// handler authorizes it for the connection's verified user with the repository's policy.json, and
// its Completion comes back as the client's promise.
//
// "Did not receive" is shown without waiting for a timeout, as in stack.test.mjs: a marker sent
// to the bystander afterwards must be the first thing it receives.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Inbox } from './emulator-helpers.mjs';
import { TARGET, callFunction, connection, getToken, startStack } from './stack-helpers.mjs';

// A hang guard, not a timing assertion: a healthy run takes a few seconds.
const HANG_GUARD_MS = 120_000;

async function connected(t, stack, token) {
  const hub = connection(stack, token);
  const inbox = new Inbox(hub, [TARGET]);
  await hub.start();
  t.after(() => hub.stop());
  return { hub, inbox };
}

test('hub methods are authorized per verified user and answered as the client\'s promise', { timeout: HANG_GUARD_MS }, async (t) => {
  const stack = await startStack(t);
  const [alice, bob, carol] = await Promise.all(['alice', 'bob', 'carol'].map((user) => getToken(stack, user)));
  const aliceConn = await connected(t, stack, alice);
  const bobConn = await connected(t, stack, bob);
  const carolConn = await connected(t, stack, carol);

  // invoke resolves with the upstream's result; the group action was applied before it answered.
  const joined = await aliceConn.hub.invoke('joinGroup', 'room-2');
  assert.deepEqual(joined, { action: 'add', group: 'room-2', userId: 'alice' });

  // bob (not a member: the policy allows sending to any room) sends over his WebSocket and claims
  // to be root; the stamp names the connection's verified user.
  const sent = await bobConn.hub.invoke('sendToGroup', 'room-2', TARGET, { sender: 'root', text: 'hello room-2' });
  assert.deepEqual(sent, { sent: true, target: TARGET, group: 'room-2' });
  const received = await aliceConn.inbox.next();
  assert.deepEqual(received.args[0], { sender: 'bob', source: 'signalr-connection' });
  assert.equal(received.args[1].text, 'hello room-2');

  // carol is not in room-2: her next message is the marker, not the group's message.
  const marker = await callFunction(stack, 'sendToUser', alice, {
    userId: 'carol', target: TARGET, arguments: [{ text: 'marker for carol' }],
  });
  assert.equal(marker.status, 202, marker.text);
  assert.equal((await carolConn.inbox.next()).args[1].text, 'marker for carol', 'carol received the group message');

  // A group outside the policy: the per-operation rule refuses, and the promise rejects with it.
  await assert.rejects(aliceConn.hub.invoke('joinGroup', 'staff'), { message: 'forbidden: join' });
  // A method no `invoke` rule names.
  await assert.rejects(aliceConn.hub.invoke('removeFromAllGroups'), { message: 'forbidden: invoke' });

  // The refused join changed nothing: a message to `staff` reaches nobody, alice's next message
  // is her marker.
  await assert.rejects(bobConn.hub.invoke('sendToGroup', 'staff', TARGET, { text: 'x' }), { message: 'forbidden: sendToGroup' });
  const aliceMarker = await callFunction(stack, 'sendToUser', bob, {
    userId: 'alice', target: TARGET, arguments: [{ text: 'marker for alice' }],
  });
  assert.equal(aliceMarker.status, 202, aliceMarker.text);
  assert.equal((await aliceConn.inbox.next()).args[1].text, 'marker for alice');
});

// Forwarded claims on the upstream path, as the emulator echoes them in X-ASRS-User-Claims (with
// every other claim of the token: aud, exp, asrs.*): `onConnect` joins `team.{claim:team}`,
// `invoke` needs a forwarded role. A verified team smuggling `, roles: admin` is left out of the
// token at negotiate, so it neither joins a team nor gains the admin role.
test('forwarded claims drive onConnect and invoke; a comma in a claim value grants nothing', { timeout: HANG_GUARD_MS }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'e2e-claims-policy-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const policyFile = join(dir, 'policy.json');
  writeFileSync(policyFile, JSON.stringify({
    rules: [
      { operations: ['join'], groups: ['room-*'] },
      { operations: ['join'], groups: ['admins'], require: { roles: ['admin'] } },
      { operations: ['sendToGroup'], groups: ['team.{claim:team}'] },
      { operations: ['sendToUser'], users: ['**'] },
    ],
    invoke: [{ targets: ['joinGroup', 'sendToGroup'], require: { roles: ['member'] } }],
    onConnect: { groups: ['team.{claim:team}'] },
  }));
  const stack = await startStack(t, { POLICY_FILE: policyFile, AUTH_FORWARD_CLAIMS: 'team,roles' });
  const [alice, bob, mallory] = await Promise.all([
    getToken(stack, 'alice', { roles: ['member'], claims: { team: 'red' } }),
    getToken(stack, 'bob', { roles: ['member'], claims: { team: 'red' } }),
    getToken(stack, 'mallory', { roles: ['member'], claims: { team: 'red, roles: admin' } }),
  ]);
  const aliceConn = await connected(t, stack, alice);
  const bobConn = await connected(t, stack, bob);
  const malloryConn = await connected(t, stack, mallory);
  // Each connection's events reach the upstream in order, so once an invocation resolves its
  // `connected` (and the onConnect joins) has been applied. Resolving also shows the emulator's
  // whole claims header was trusted: `invoke` needed the forwarded `member` role.
  for (const [user, conn] of [['alice', aliceConn], ['bob', bobConn], ['mallory', malloryConn]]) {
    assert.deepEqual(await conn.hub.invoke('joinGroup', 'room-9'), { action: 'add', group: 'room-9', userId: user });
  }

  const sent = await bobConn.hub.invoke('sendToGroup', 'team.red', TARGET, { text: 'hello team red' });
  assert.deepEqual(sent, { sent: true, target: TARGET, group: 'team.red' });
  assert.equal((await aliceConn.inbox.next()).args[1].text, 'hello team red');

  // mallory's team was dropped from her token: no team group, no admin role, no team send.
  await assert.rejects(malloryConn.hub.invoke('joinGroup', 'admins'), { message: 'forbidden: join' });
  await assert.rejects(malloryConn.hub.invoke('sendToGroup', 'team.red', TARGET, { text: 'x' }), { message: 'forbidden: sendToGroup' });
  const marker = await callFunction(stack, 'sendToUser', alice, {
    userId: 'mallory', target: TARGET, arguments: [{ text: 'marker for mallory' }],
  });
  assert.equal(marker.status, 202, marker.text);
  assert.equal((await malloryConn.inbox.next()).args[1].text, 'marker for mallory', 'mallory received the team message');
});
