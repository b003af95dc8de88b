'use strict';

// One step of the broker's live n8n test: reads {"action", ...} as JSON on stdin and prints `RESULT <json>`:
// {"ok": true, "result": ...} or {"ok": false, "error": {"message", "status", "body"}}.
const harness = require('./harness');

const actions = {
  authorize: ({ credential, redirectUri, state }) =>
    harness.authorizeUri(harness.oauthCredential(credential), redirectUri, state),
  exchange: ({ credential, redirectUri, callbackQuery, codeVerifier }) =>
    harness.exchangeCode(harness.oauthCredential(credential), redirectUri, callbackQuery, codeVerifier),
  refresh: ({ credential, oauthTokenData }) => harness.refreshToken(harness.oauthCredential(credential), oauthTokenData),
  execute: ({ setup }) => harness.execute(setup),
  hook: ({ method, setup }) => harness.hook(method, setup),
  webhook: ({ setup, delivery }) => harness.webhook(setup, delivery),
};

const main = async () => {
  let text = '';
  for await (const chunk of process.stdin) text += chunk;
  const step = JSON.parse(text);
  try {
    const result = await actions[step.action](step);
    process.stdout.write(`RESULT ${JSON.stringify({ ok: true, result: result ?? null })}\n`);
  } catch (error) {
    const status = error.status ?? error.httpCode ?? error.context?.data?.status;
    const body = error.body ?? error.context?.data;
    process.stdout.write(`RESULT ${JSON.stringify({ ok: false, error: { message: error.message, status, body } })}\n`);
  }
};

main().catch((error) => {
  process.stderr.write(`${error.stack}\n`);
  process.exit(2);
});
