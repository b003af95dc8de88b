'use strict';

// Offline: the app definition validates against zapier-platform-schema, and zapier-platform-core's own `validate`
// command (what `zapier validate` runs locally) reports nothing.
const assert = require('node:assert/strict');
const { test } = require('node:test');

const schema = require('zapier-platform-schema');
const { serializeApp, validateApp } = require('zapier-platform-core/src/tools/schema');
const { createAppHandler } = require('zapier-platform-core');

const App = require('../index');

test('the definition validates against zapier-platform-schema', () => {
  const result = schema.validateAppDefinition(validateAppShape(App));
  assert.deepEqual(result.errors.map((error) => error.stack), []);
});

test("zapier-platform-core's validate command finds no errors", async () => {
  assert.deepEqual(validateApp(App), []);
  const handler = createAppHandler(App);
  const answer = await handler({ command: 'validate', bundle: {} });
  assert.deepEqual(answer.results, []);
});

test('the validator does catch a key Zapier does not allow in oauth2Config', () => {
  const broken = validateAppShape(App);
  broken.authentication.oauth2Config.tokenUrl = 'https://nim.example/oauth/token';
  const result = schema.validateAppDefinition(broken);
  assert.match(result.errors.map((error) => error.message).join('\n'), /additional property "tokenUrl"/);
});

test('oauth2Config is what Zapier needs for PKCE and automatic refresh', () => {
  const config = App.authentication.oauth2Config;
  assert.equal(App.authentication.type, 'oauth2');
  assert.equal(config.autoRefresh, true);
  assert.equal(config.enablePkce, true);
  assert.deepEqual(config.scope.split(' ').sort(), ['analytics:read', 'hooks:write', 'links:read', 'links:write']);
  assert.equal(config.getAccessToken.body.code_verifier, '{{bundle.inputData.code_verifier}}');
  assert.equal(config.authorizeUrl.params.response_type, 'code');
});

test('both triggers are REST hooks with subscribe, unsubscribe, perform and performList', () => {
  for (const key of ['new_link', 'link_clicked']) {
    const operation = App.triggers[key].operation;
    assert.equal(operation.type, 'hook');
    for (const method of ['performSubscribe', 'performUnsubscribe', 'perform', 'performList']) {
      assert.equal(typeof operation[method], 'function', `${key}.${method}`);
    }
  }
});

// zapier-platform-schema validates the JSON form of a definition: functions become the `$func$` strings the CLI sends.
function validateAppShape(app) {
  return serializeApp(app);
}
