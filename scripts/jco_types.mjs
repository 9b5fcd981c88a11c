// Writes the TypeScript types of the `plugin` world (guest side: what a
// JavaScript plugin imports and exports) with jco's type generator:
// node jco_types.mjs WIT_DIR OUT_DIR (run from a directory whose
// node_modules holds the pinned @bytecodealliance/jco-transpile).
//
// The WIT files are joined into one source string rather than read by path:
// jco 1.35's generator runs in a WASI sandbox with no preopened directories,
// so it reports any path as missing.
import { $init, generateTypes } from '@bytecodealliance/jco-transpile/component';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

const [witDir, outDir] = process.argv.slice(2);
const PACKAGE = /^package [^;]+;\s*$/m;

const names = (await readdir(witDir)).filter((name) => name.endsWith('.wit')).sort();
const sources = await Promise.all(names.map((name) => readFile(join(witDir, name), 'utf8')));
const header = sources.map((source) => source.match(PACKAGE)?.[0]).find(Boolean);
const source = [header, ...sources.map((source) => source.replace(PACKAGE, ''))].join('\n');

await $init;
const files = generateTypes('plugin', {
  wit: { tag: 'source', val: source },
  world: 'plugin',
  guest: true,
  tlaCompat: false,
  features: { tag: 'list', val: [] },
  asyncMode: { tag: 'sync' },
  flagsAsBigint: false,
  variantsInlineCases: false,
  useNamespaceObjects: false,
  enumValuesScreamingSnakeCase: false,
});
for (const [name, contents] of files) {
  const path = join(outDir, name);
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, contents);
}
