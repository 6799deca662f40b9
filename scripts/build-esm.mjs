// Writes the ESM entry point: a thin wrapper that re-exports the CommonJS build, so both
// module systems share one instance of the library (and of the native addon).
import { createRequire } from 'node:module';
import { mkdirSync, writeFileSync } from 'node:fs';

const require = createRequire(import.meta.url);
const names = Object.keys(require('../dist/cjs/index.js')).filter((n) => n !== '__esModule').sort();
mkdirSync(new URL('../dist/esm/', import.meta.url), { recursive: true });
writeFileSync(
  new URL('../dist/esm/index.mjs', import.meta.url),
  `import qkv from '../cjs/index.js';\n\nexport const { ${names.join(', ')} } = qkv;\nexport default qkv;\n`,
);
writeFileSync(
  new URL('../dist/esm/index.d.mts', import.meta.url),
  `export * from '../cjs/index.js';\n`,
);
