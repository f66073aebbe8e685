// Demo page: sign in at the dev identity provider, connect through the app's negotiate function,
// then join groups and send to a group over the WebSocket (connection.invoke: the service forwards
// each call to the app's `upstream` function, which authorizes it for the connection's verified
// user), and send to a user through the app's sendToUser HTTP function. Everything user-supplied
// is written with textContent, never as HTML.
'use strict';

(() => {
  const API = '/api';
  const TARGET = 'newMessage';
  const DEFAULT_IDP = 'http://localhost:7072';

  const $ = (id) => document.getElementById(id);
  const state = { token: null, user: null, connection: null, groups: new Set() };

  // The identity provider URL: ?idp=… (tests, other ports), then the last one used, then the default.
  const params = new URLSearchParams(window.location.search);
  $('idp-url').value = params.get('idp') || localStorage.getItem('demo.idp') || DEFAULT_IDP;

  function log(text, ok = true) {
    const item = document.createElement('li');
    item.className = ok ? '' : 'bad';
    const time = document.createElement('span');
    time.className = 'time';
    time.textContent = new Date().toLocaleTimeString();
    item.append(time, text);
    $('log').prepend(item);
  }

  function setResult(element, text, ok) {
    element.textContent = text;
    element.className = `result ${ok ? 'ok' : 'bad'}`;
  }

  function decodeJwtPayload(token) {
    const payload = token.split('.')[1] || '';
    const base64 = payload.replace(/-/g, '+').replace(/_/g, '/');
    const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes));
  }

  function refresh() {
    const connected = state.connection?.state === signalR.HubConnectionState.Connected;
    $('connect').disabled = !state.token || Boolean(state.connection);
    $('disconnect').disabled = !state.connection;
    for (const id of ['join', 'leave', 'send-group', 'send-user']) $(id).disabled = !connected;
    $('connection-state').textContent = state.connection ? state.connection.state.toLowerCase() : 'disconnected';
    $('joined-groups').textContent = state.groups.size ? [...state.groups].join(', ') : 'none';
    $('send-group-name').textContent = $('group').value || '…';
    const status = $('status');
    if (connected) {
      status.textContent = `Connected as ${$('connection-user').textContent}`;
      status.className = 'pill pill-on';
    } else {
      status.textContent = state.user ? `Signed in as ${state.user}` : 'Signed out';
      status.className = 'pill pill-off';
    }
  }

  // 1. Sign in: ask the dev issuer for a token (JSON endpoint, CORS-enabled).
  $('signin-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const idp = $('idp-url').value.trim().replace(/\/+$/, '');
    const user = $('user').value.trim();
    const roles = $('roles').value.split(',').map((role) => role.trim()).filter(Boolean);
    try {
      const response = await fetch(`${idp}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ sub: user, roles }),
      });
      const body = await response.json();
      if (!response.ok) throw new Error(body.error_description || `HTTP ${response.status}`);
      localStorage.setItem('demo.idp', idp);
      state.token = body.access_token;
      state.user = user;
      const minutes = Math.round(body.expires_in / 60);
      setResult($('signed-in-as'), `Signed in as ${user} (token valid ${minutes} min)`, true);
      log(`signed in as ${user} at ${idp}`);
    } catch (error) {
      state.token = null;
      state.user = null;
      setResult($('signed-in-as'), `Sign-in failed: ${error.message}`, false);
      log(`sign-in failed: ${error.message}`, false);
    }
    refresh();
  });

  // The SignalR client negotiates itself; this HTTP client only reads the user id the service
  // token carries (asrs.s.uid), which the handler took from the verified app token.
  class InspectingHttpClient extends signalR.DefaultHttpClient {
    async send(request) {
      const response = await super.send(request);
      if (request.url.includes(`${API}/negotiate`) && typeof response.content === 'string') {
        try {
          const info = JSON.parse(response.content);
          $('connection-user').textContent = decodeJwtPayload(info.accessToken)['asrs.s.uid'] ?? '(none)';
        } catch {
          $('connection-user').textContent = '(unreadable)';
        }
      }
      return response;
    }
  }

  // 2. Connect through /api/negotiate with the app token.
  $('connect').addEventListener('click', async () => {
    const connection = new signalR.HubConnectionBuilder()
      .withUrl(API, {
        accessTokenFactory: () => state.token,
        httpClient: new InspectingHttpClient(signalR.NullLogger.instance),
      })
      .configureLogging(signalR.LogLevel.Warning)
      .build();
    connection.on(TARGET, (stamp, message) => showMessage(stamp, message));
    connection.onclose((error) => {
      state.connection = null;
      state.groups.clear();
      $('connection-user').textContent = '—';
      log(error ? `connection closed: ${error.message}` : 'disconnected', !error);
      refresh();
    });
    state.connection = connection;
    refresh();
    try {
      await connection.start();
      log(`connected (connection ${connection.connectionId})`);
    } catch (error) {
      state.connection = null;
      $('connection-user').textContent = '—';
      log(`connect failed: ${error.message}`, false);
    }
    refresh();
  });

  $('disconnect').addEventListener('click', async () => {
    await state.connection?.stop();
  });

  async function callFunction(name, body) {
    const response = await fetch(`${API}/${name}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${state.token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    let detail = '';
    try {
      const json = await response.json();
      detail = json.error ? ` ${json.error}${json.message ? `: ${json.message}` : ''}` : '';
    } catch {
      detail = '';
    }
    log(`${name} → ${response.status}${detail}`, response.ok);
    return response.ok;
  }

  // A hub method over the WebSocket. The promise resolves with the upstream's result, or rejects
  // with its error Completion (`forbidden: join`, …) when the policy refuses the call.
  async function invokeHub(method, ...args) {
    try {
      await state.connection.invoke(method, ...args);
      log(`${method}(${args.slice(0, 2).map((arg) => JSON.stringify(arg)).join(', ')}) → ok`);
      return true;
    } catch (error) {
      const { message } = error;
      log(`${method}(${JSON.stringify(args[0])}) refused: ${message}`, false);
      setResult($('invoke-error'), `${method} refused: ${message}`, false);
      return false;
    }
  }

  // 3. Groups: the handler adds or removes the connection's verified user, never a user named by
  // the client.
  $('group-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const group = $('group').value.trim();
    if (await invokeHub('joinGroup', group)) state.groups.add(group);
    refresh();
  });

  $('leave').addEventListener('click', async () => {
    const group = $('group').value.trim();
    if (await invokeHub('leaveGroup', group)) state.groups.delete(group);
    refresh();
  });

  $('group').addEventListener('input', refresh);

  // 4. Send. The page claims no sender name: the handler writes the verified sender as the
  // first argument of every message, and receivers show that one.
  $('send-group-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const group = $('group').value.trim();
    const text = $('send-group-text').value;
    const sent = await invokeHub('sendToGroup', group, TARGET, { via: `group ${group} (WebSocket)`, text });
    if (sent) $('send-group-text').value = '';
  });

  $('send-user-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    const userId = $('send-user-id').value.trim();
    const text = $('send-user-text').value;
    const sent = await callFunction('sendToUser', {
      userId,
      target: TARGET,
      arguments: [{ via: `to ${userId} (HTTP)`, text }],
    });
    if (sent) $('send-user-text').value = '';
  });

  // `stamp` is the handler-written first argument {sender, source}: the verified sender. Any
  // name inside `message` is whatever the sending page wrote, so it is never shown as the sender.
  function showMessage(stamp, message) {
    const list = $('messages');
    list.querySelector('.empty')?.remove();
    const item = document.createElement('li');
    const verified = typeof stamp?.sender === 'string' && typeof stamp?.source === 'string';
    const cells = [
      ['time', new Date().toLocaleTimeString()],
      ['from', verified ? stamp.sender : '(unverified sender)'],
      ['text', `${message?.text ?? JSON.stringify(message)}`],
    ];
    for (const [name, value] of cells) {
      const cell = document.createElement('span');
      cell.className = name;
      cell.textContent = value;
      if (name === 'from') {
        // Only what the handler wrote goes in the sender's cell.
        if (verified) cell.dataset.source = stamp.source;
        const by = document.createElement('div');
        by.className = 'via';
        by.textContent = `verified by ${verified ? stamp.source : 'nobody'}`;
        cell.append(by);
      }
      if (name === 'text' && typeof message?.via === 'string') {
        // The route is what the sending page wrote: shown with the message, not as the sender.
        const route = document.createElement('div');
        route.className = 'via';
        route.textContent = `sent ${message.via}`;
        cell.append(route);
      }
      item.append(cell);
    }
    list.prepend(item);
  }

  refresh();
})();
