'use strict';

// Runs one of the app's functions through createAppTester, as Zapier would, for the broker's live tests:
//   echo '{"method": "authentication.test", "bundle": {...}}' | NODE_ENV=test CLIENT_ID=... CLIENT_SECRET=... \
//     BASE_URL=http://127.0.0.1:8000 node test/invoke.js
// Prints one line `RESULT <json>`: {"ok": true, "result": ...} or {"ok": false, "error": {"name", "message"}}
// (zapier-platform-core may log other lines to stdout).
const zapier = require('zapier-platform-core');
const App = require('../index');

const read = async () => {
  let text = '';
  for await (const chunk of process.stdin) {
    text += chunk;
  }
  return JSON.parse(text);
};

const main = async () => {
  const { method, bundle } = await read();
  const target = method.split('.').reduce((node, key) => (node ? node[key] : undefined), App);
  if (target === undefined) {
    throw new Error(`The app has no ${method}.`);
  }
  if (typeof target !== 'function' && typeof target !== 'object') {
    process.stdout.write(`RESULT ${JSON.stringify({ ok: true, result: target })}\n`); // a setting, such as the scope
    return;
  }
  const appTester = zapier.createAppTester(App);
  try {
    const result = await appTester(target, bundle);
    process.stdout.write(`RESULT ${JSON.stringify({ ok: true, result: result === undefined ? null : result })}\n`);
  } catch (error) {
    process.stdout.write(`RESULT ${JSON.stringify({ ok: false, error: { name: error.name, message: error.message } })}\n`);
  }
};

main().catch((error) => {
  process.stderr.write(`${error.stack}\n`);
  process.exit(2);
});
