'use strict';

// Offline: the compiled credentials and nodes, driven by test/harness.js (as n8n would drive them) against a small
// stand-in for the broker on 127.0.0.1. The broker's live suite runs the same harness against the real broker.
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const http = require('node:http');
const { after, before, test } = require('node:test');

const harness = require('./harness');
const { NimOAuth2Api } = require('../dist/credentials/NimOAuth2Api.credentials');
const { NimApi } = require('../dist/credentials/NimApi.credentials');
const { signatureIsValid } = require('../dist/nodes/NimTrigger/NimTrigger.node');
const packageJson = require('../package.json');

const CLIENT = { clientId: 'client-n8n', clientSecret: 'secret-n8n' };
const REDIRECT = 'https://n8n.test/rest/oauth2-credential/callback';
const seen = [];
const codes = new Map();
const hooks = new Map();
let server;
let baseUrl;

const send = (response, status, body) => {
  response.writeHead(status, { 'content-type': 'application/json' });
  response.end(body === undefined ? '' : JSON.stringify(body));
};

// Client authentication either way, as the broker accepts it.
const client = (request, form) => {
  const basic = /^Basic (.+)$/.exec(request.headers.authorization || '');
  const [id, secret] = basic ? Buffer.from(basic[1], 'base64').toString().split(':') : [form.client_id, form.client_secret];
  return id === CLIENT.clientId && secret === CLIENT.clientSecret;
};

const token = (number) => ({
  access_token: `access-${number}`,
  token_type: 'Bearer',
  expires_in: 3600,
  refresh_token: `refresh-${number}`,
  scope: 'links:read links:write analytics:read hooks:write',
  account_id: 'acc_test',
});

const link = { id: 'lnk_1', slug: 'promo', destination: 'https://example.com/', clicks: 0 };

const routes = {
  'GET /oauth/authorize': (request, body, response) => {
    const query = new URL(request.url, baseUrl).searchParams;
    const code = `code-${codes.size}`;
    codes.set(code, query.get('code_challenge'));
    response.writeHead(303, { location: `${query.get('redirect_uri')}?code=${code}&state=${query.get('state')}` });
    response.end();
  },
  'POST /oauth/token': (request, body, response) => {
    const form = Object.fromEntries(new URLSearchParams(body));
    if (!client(request, form)) return send(response, 401, { error: 'invalid_client', error_description: 'No.' });
    if (form.grant_type === 'refresh_token') {
      return form.refresh_token === 'refresh-1'
        ? send(response, 200, token(2))
        : send(response, 400, { error: 'invalid_grant', error_description: 'The refresh token is no longer valid.' });
    }
    const challenge = codes.get(form.code);
    const verified = crypto.createHash('sha256').update(form.code_verifier || '').digest('base64url');
    if (challenge && challenge !== verified) return send(response, 400, { error: 'invalid_grant', error_description: 'PKCE.' });
    return send(response, 200, token(1));
  },
  'GET /v1/me': (request, body, response) =>
    request.headers.authorization === 'Bearer access-dead'
      ? send(response, 401, { error: 'reconnect_required', message: 'This connection was disconnected.' })
      : send(response, 200, { account_id: 'acc_test', workspace: { name: 'Acme' }, credential: {} }),
  'POST /v1/workspaces/acc_test/links': (request, body, response) => send(response, 201, { ...link, ...JSON.parse(body) }),
  'GET /v1/workspaces/acc_test/links': (request, body, response) => {
    const after = new URL(request.url, baseUrl).searchParams.get('starting_after');
    return send(response, 200, after ? { data: [{ ...link, id: 'lnk_0' }], has_more: false } : { data: [link], has_more: true });
  },
  'GET /v1/workspaces/acc_test/links/lnk_1': (request, body, response) => send(response, 200, link),
  'PATCH /v1/workspaces/acc_test/links/lnk_1': (request, body, response) => send(response, 200, { ...link, ...JSON.parse(body) }),
  'DELETE /v1/workspaces/acc_test/links/lnk_1': (request, body, response) => send(response, 204),
  'GET /v1/workspaces/acc_test/links/lnk_1/analytics': (request, body, response) =>
    send(response, 200, { days: [], total: 0 }),
  'POST /v1/workspaces/acc_test/hooks': (request, body, response) => {
    const hook = { id: `hook_${hooks.size + 1}`, status: 'active', ...JSON.parse(body) };
    hooks.set(hook.id, hook);
    return send(response, 201, { ...hook, secret: 'whsec_a2V5LWtleS1rZXkta2V5' });
  },
  'DELETE /v1/workspaces/acc_test/hooks/hook_1': (request, body, response) =>
    hooks.delete('hook_1') ? send(response, 204) : send(response, 404, { error: 'not_found', message: 'No such hook.' }),
};

before(async () => {
  server = http.createServer((request, response) => {
    let body = '';
    request.on('data', (chunk) => (body += chunk));
    request.on('end', () => {
      const path = request.url.split('?')[0];
      seen.push({ method: request.method, path, url: request.url, headers: request.headers, body });
      const hook = /^\/v1\/workspaces\/acc_test\/hooks\/([^/]+)$/.exec(path);
      if (request.method === 'GET' && hook) {
        const found = hooks.get(decodeURIComponent(hook[1]));
        return found ? send(response, 200, found) : send(response, 404, { error: 'not_found', message: 'No such hook.' });
      }
      const route = routes[`${request.method} ${path}`];
      return route ? route(request, body, response) : send(response, 404, { error: 'not_found', message: 'No.' });
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${server.address().port}`;
});

after(() => server.close());

const last = () => seen[seen.length - 1];

async function connect(style) {
  const credential = harness.oauthCredential({ baseUrl, ...CLIENT, style });
  const { url, codeVerifier } = harness.authorizeUri(credential, REDIRECT, 'st4te');
  const consent = await fetch(url, { redirect: 'manual' });
  const callbackQuery = new URL(consent.headers.get('location')).search.slice(1);
  return { credential, data: await harness.exchangeCode(credential, REDIRECT, callbackQuery, codeVerifier) };
}

test('the package lists its compiled credentials and nodes', () => {
  for (const file of [...packageJson.n8n.credentials, ...packageJson.n8n.nodes]) {
    assert.doesNotThrow(() => require(`../${file}`), file);
  }
  const oauth = new NimOAuth2Api();
  assert.deepEqual(oauth.extends, ['oAuth2Api']);
  const hidden = Object.fromEntries(oauth.properties.filter((p) => p.type === 'hidden').map((p) => [p.name, p.default]));
  assert.equal(hidden.grantType, 'pkce');
  assert.equal(hidden.authentication, 'header');
  assert.equal(new NimApi().test.request.url, '/v1/me');
});

test('PKCE style: Basic client authentication and a verifier matching the S256 challenge', async () => {
  const { data } = await connect('pkce');
  assert.match(last().headers.authorization, /^Basic /);
  const form = Object.fromEntries(new URLSearchParams(last().body));
  assert.equal(form.grant_type, 'authorization_code');
  assert.ok(form.code_verifier.length >= 43);
  assert.equal(form.client_secret, undefined);
  assert.equal(data.account_id, 'acc_test');
});

test('header and body styles', async () => {
  await connect('header');
  assert.equal(Buffer.from(last().headers.authorization.slice(6), 'base64').toString(), 'client-n8n:secret-n8n');
  await connect('body');
  assert.equal(last().headers.authorization, undefined);
  const form = Object.fromEntries(new URLSearchParams(last().body));
  assert.equal(form.client_id, 'client-n8n');
  assert.equal(form.client_secret, 'secret-n8n');
});

test('refresh merges the answer into the stored token; invalid_grant surfaces with its code', async () => {
  const { credential, data } = await connect('pkce');
  const refreshed = await harness.refreshToken(credential, data);
  assert.equal(refreshed.access_token, 'access-2');
  await assert.rejects(harness.refreshToken(credential, refreshed), (error) => {
    assert.equal(error.body.error, 'invalid_grant');
    return true;
  });
});

const setup = (parameters) => ({
  parameters: { authentication: 'oAuth2', ...parameters },
  credentialType: 'nimOAuth2Api',
  credentials: { baseUrl, oauthTokenData: token(1) },
});

test('the action node sends each operation to its endpoint with the bearer token', async () => {
  const created = await harness.execute(setup({ resource: 'link', operation: 'create', destination: 'https://e.x/', slug: 'p' }));
  assert.equal(`${last().method} ${last().path}`, 'POST /v1/workspaces/acc_test/links');
  assert.equal(last().headers.authorization, 'Bearer access-1');
  assert.deepEqual(JSON.parse(last().body), { destination: 'https://e.x/', slug: 'p' });
  assert.equal(created[0].slug, 'p');

  await harness.execute(setup({ resource: 'link', operation: 'update', linkId: 'lnk_1', updateFields: { slug: 'q' } }));
  assert.deepEqual(JSON.parse(last().body), { slug: 'q' });
  const all = await harness.execute(setup({ resource: 'link', operation: 'list', returnAll: true }));
  assert.deepEqual(all.map((item) => item.id), ['lnk_1', 'lnk_0']);
  assert.equal(last().url, '/v1/workspaces/acc_test/links?limit=100&starting_after=lnk_1');
  await harness.execute(setup({ resource: 'analytics', operation: 'get', linkId: 'lnk_1', days: 7 }));
  assert.equal(last().url, '/v1/workspaces/acc_test/links/lnk_1/analytics?days=7');
  const deleted = await harness.execute(setup({ resource: 'link', operation: 'delete', linkId: 'lnk_1' }));
  assert.deepEqual(deleted, [{ deleted: true, id: 'lnk_1' }]);

  const withKey = {
    parameters: { authentication: 'apiKey', resource: 'link', operation: 'get', linkId: 'lnk_1' },
    credentialType: 'nimApi',
    credentials: { baseUrl, apiKey: 'nim_key_x' },
  };
  await harness.execute(withKey);
  assert.equal(last().headers.authorization, 'Bearer nim_key_x');
});

test('the trigger registers, remembers and removes its hook', async () => {
  const parameters = { event: 'link.clicked' };
  const webhookUrl = 'https://n8n.test/webhook/abc/webhook';
  const first = await harness.hook('checkExists', { ...setup(parameters), webhookUrl });
  assert.equal(first.result, false);
  const created = await harness.hook('create', { ...setup(parameters), webhookUrl });
  assert.deepEqual(JSON.parse(last().body), { event: 'link.clicked', target_url: webhookUrl });
  assert.equal(created.staticData.hookId, 'hook_1');
  const exists = await harness.hook('checkExists', { ...setup(parameters), webhookUrl, staticData: created.staticData });
  assert.equal(exists.result, true);
  const moved = { ...setup(parameters), webhookUrl: `${webhookUrl}-test`, staticData: { ...created.staticData } };
  assert.equal((await harness.hook('checkExists', moved)).result, false);
  const removed = await harness.hook('delete', { ...setup(parameters), webhookUrl, staticData: created.staticData });
  assert.equal(`${last().method} ${last().path}`, 'DELETE /v1/workspaces/acc_test/hooks/hook_1');
  assert.deepEqual(removed.staticData, {});
  const again = await harness.hook('delete', { ...setup(parameters), webhookUrl, staticData: { hookId: 'hook_1' } });
  assert.equal(again.result, true);
});

test('the trigger forgets its hook across a disconnect and registers a new one after reconnecting', async () => {
  hooks.clear();
  const parameters = { event: 'link.created' };
  const webhookUrl = 'https://n8n.test/webhook/def/webhook';
  const created = await harness.hook('create', { ...setup(parameters), webhookUrl });
  const saved = created.staticData;
  assert.equal((await harness.hook('checkExists', { ...setup(parameters), webhookUrl, staticData: { ...saved } })).result, true);

  // Disconnected: deactivating cannot reach Nim, yet it succeeds and clears what was saved.
  const dead = setup(parameters);
  dead.credentials = { ...dead.credentials, oauthTokenData: { access_token: 'access-dead' } };
  const removed = await harness.hook('delete', { ...dead, webhookUrl, staticData: { ...saved } });
  assert.deepEqual(removed, { result: true, staticData: {} });

  // Nim disabled the hook meanwhile: saved data that survived anyway is not trusted.
  hooks.get(saved.hookId).status = 'disabled';
  assert.equal((await harness.hook('checkExists', { ...setup(parameters), webhookUrl, staticData: { ...saved } })).result, false);
  // A hook for another event is not this trigger's either.
  hooks.get(saved.hookId).status = 'active';
  const other = { ...setup({ event: 'link.clicked' }), webhookUrl, staticData: { ...saved } };
  assert.equal((await harness.hook('checkExists', other)).result, false);
  // Neither is one that no longer exists (a reconnect is a new connection, which owns no hook yet).
  hooks.clear();
  assert.equal((await harness.hook('checkExists', { ...setup(parameters), webhookUrl, staticData: { ...saved } })).result, false);
  const again = await harness.hook('create', { ...setup(parameters), webhookUrl, staticData: { ...saved } });
  assert.notEqual(again.staticData.secret, undefined);
  assert.equal(hooks.get(again.staticData.hookId).target_url, webhookUrl);
});

test('the trigger passes a signed delivery on and answers 401 to any other', async () => {
  const secret = 'whsec_a2V5LWtleS1rZXkta2V5';
  const body = '{"id":"evt_1","type":"link.created","data":{"link":{}}}';
  const timestamp = String(Math.floor(Date.now() / 1000));
  const signature = crypto
    .createHmac('sha256', Buffer.from(secret.slice(6), 'base64'))
    .update(`msg_1.${timestamp}.${body}`)
    .digest('base64');
  const headers = { 'webhook-id': 'msg_1', 'webhook-timestamp': timestamp, 'webhook-signature': `v1,${signature}` };
  const trigger = { ...setup({ event: 'link.created' }), staticData: { hookId: 'hook_1', secret } };
  const passed = await harness.webhook(trigger, { headers, body });
  assert.deepEqual(passed.result.workflowData[0][0].json.id, 'evt_1');
  const forged = await harness.webhook(trigger, { headers, body: body.replace('evt_1', 'evt_2') });
  assert.deepEqual(forged, { result: { noWebhookResponse: true }, responded: { status: 401, body: { error: 'invalid_signature' } } });
});

test('deliveries are checked against the Standard Webhooks signature', () => {
  const secret = 'whsec_a2V5LWtleS1rZXkta2V5';
  const body = Buffer.from('{"id":"evt_1"}');
  const now = Date.now();
  const timestamp = String(Math.floor(now / 1000));
  const signature = crypto
    .createHmac('sha256', Buffer.from(secret.slice(6), 'base64'))
    .update(`msg_1.${timestamp}.${body}`)
    .digest('base64');
  const headers = { 'webhook-id': 'msg_1', 'webhook-timestamp': timestamp, 'webhook-signature': `v1,${signature}` };
  assert.equal(signatureIsValid(secret, headers, body, now), true);
  assert.equal(signatureIsValid(secret, { ...headers, 'webhook-signature': 'v1,AAAA v1,bad' }, body, now), false);
  assert.equal(signatureIsValid(secret, headers, Buffer.from('{"id":"evt_2"}'), now), false);
  assert.equal(signatureIsValid(secret, headers, body, now + 10 * 60 * 1000), false);
});
