// Builds a JavaScript plugin into a component: node componentize_js.mjs
// SOURCE.js OUT.wasm (run with NODE_PATH at the pinned componentize-js
// install). Only stdio stays enabled (stdout and stderr reach the step log);
// random, clocks, fetch and the fetch-event handler are disabled.
import { componentize } from '@bytecodealliance/componentize-js';
import { writeFile } from 'node:fs/promises';

const [sourcePath, out] = process.argv.slice(2);
const { component } = await componentize({
  sourcePath,
  witPath: 'wit',
  worldName: 'plugin',
  disableFeatures: ['random', 'clocks', 'http', 'fetch-event'],
});
await writeFile(out, component);
