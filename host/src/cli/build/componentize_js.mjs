// Builds a JavaScript plugin into a component: node componentize_js.mjs
// SOURCE.js OUT.wasm WIT_DIR, run from the directory the plugin sees as `/`
// (Node resolves the pinned componentize-js from this script's directory,
// where `courier build` installs it). Only stdio stays enabled (stdout and
// stderr reach the step log); random, clocks, fetch and the fetch-event
// handler are disabled.
import { componentize } from '@bytecodealliance/componentize-js';
import { writeFile } from 'node:fs/promises';

const [sourcePath, out, witPath] = process.argv.slice(2);
const { component } = await componentize({
  sourcePath,
  witPath,
  worldName: 'plugin',
  disableFeatures: ['random', 'clocks', 'http', 'fetch-event'],
});
await writeFile(out, component);
