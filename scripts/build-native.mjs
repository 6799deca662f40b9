// Builds the native addon: cmake-js (CMakeLists.txt) when cmake is on PATH, else node-gyp
// (binding.gyp) as shipped with npm. Both build the same sources offline.
// QKV_BUILD=skip installs without the addon (the pure-JS backend is used);
// QKV_BUILD=gyp forces node-gyp (CPU backend only).
// QKV_CUDA=AUTO|ON|OFF|SHIM picks the CUDA backend (cmake-js; default AUTO: built when nvcc
// works, and if that build fails the addon is rebuilt CPU-only rather than failing the install);
// QKV_CUDA_ARCHS sets the GPU architectures (default "80;90").
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
const mode = process.env.QKV_BUILD ?? 'auto';

function run(command, args) {
  console.error(`qkv: ${command} ${args.join(' ')}`);
  const r = spawnSync(command, args, { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' });
  return r.status === 0;
}

function works(command) {
  return spawnSync(command, ['--version'], { stdio: 'ignore', shell: process.platform === 'win32' }).status === 0;
}

function hasCmake() {
  return works('cmake');
}

// The C++ compiler a build would use, or null: without one, say so instead of a page of
// cmake errors.
function cxxCompiler() {
  const candidates = [process.env.CXX, 'c++', 'g++', 'clang++', process.platform === 'win32' ? 'cl' : null];
  return candidates.find((c) => c && (c === 'cl' || works(c))) ?? null;
}

function cmakeJs() {
  const cli = join(dirname(require.resolve('cmake-js/package.json')), 'bin', 'cmake-js');
  const cuda = (process.env.QKV_CUDA ?? 'AUTO').toUpperCase();
  const args = [cli, 'compile', '--config', 'Release', `--CDQKV_CUDA=${cuda}`];
  if (process.env.QKV_CUDA_ARCHS) args.push(`--CDCMAKE_CUDA_ARCHITECTURES=${process.env.QKV_CUDA_ARCHS}`);
  if (run(process.execPath, args)) return true;
  if (cuda !== 'AUTO' || !works('nvcc')) return false;
  console.error('qkv: the build with CUDA failed (see above); building the CPU backend only (set QKV_CUDA=ON to make this an error)');
  return run(process.execPath, [cli, 'compile', '--config', 'Release', '--CDQKV_CUDA=OFF']);
}

function nodeGyp() {
  // npm exposes its bundled node-gyp to lifecycle scripts; outside them, look beside npm.
  const bundled = join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
  const gyp = process.env.npm_config_node_gyp ?? (existsSync(bundled) ? bundled : null);
  // Use the headers installed with Node when present, so nothing is downloaded.
  const prefix = join(dirname(process.execPath), '..');
  const args = ['rebuild'];
  if (!process.env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'node_api.h'))) {
    args.push(`--nodedir=${prefix}`);
  }
  return gyp ? run(process.execPath, [gyp, ...args]) : run('node-gyp', args);
}

if (mode === 'skip') {
  console.error('qkv: QKV_BUILD=skip: native addon not built; the pure-JS backend will be used');
  process.exit(0);
}
if (!cxxCompiler()) {
  console.error(
    'qkv: no C++ compiler found (looked for $CXX, c++, g++, clang++): the native addon needs a C++17 compiler ' +
      '(Debian/Ubuntu: apt-get install g++ cmake). To install without it (pure-JS backend only), set QKV_BUILD=skip.',
  );
  process.exit(1);
}
const ok = mode === 'gyp' || !hasCmake() ? nodeGyp() : cmakeJs();
if (!ok) {
  console.error(
    'qkv: building the native addon failed (see above). It needs a C++17 compiler and cmake or ' +
      'node-gyp. To install without it (pure-JS backend only), set QKV_BUILD=skip.',
  );
  process.exit(1);
}
