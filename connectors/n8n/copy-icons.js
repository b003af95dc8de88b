'use strict';

// tsc compiles the TypeScript only: the nodes' and credentials' `file:` icons go next to the compiled files.
const fs = require('node:fs');
const path = require('node:path');

for (const folder of ['nodes', 'credentials']) {
  for (const entry of fs.readdirSync(folder, { recursive: true })) {
    if (!String(entry).endsWith('.svg')) continue;
    const target = path.join('dist', folder, String(entry));
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.copyFileSync(path.join(folder, String(entry)), target);
  }
}
