// Hub methods over the WebSocket with the real @microsoft/signalr client: the SignalR emulator
// forwards each invocation to the app's `upstream` function (signed with its AccessKey), the
// handler authorizes it for the connection's verified user with the repository's policy.json, and
// its Completion comes back as the client's promise.
//
// "Did not receive" is shown without waiting for a timeout, as in stack.test.mjs: a marker sent
// to the bystander afterwards must be the first thing it receives.

import { test } from 'node:test';
import assert from 'node:assert/strict';
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
